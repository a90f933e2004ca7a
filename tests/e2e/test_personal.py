"""Personal texts and clicks as a Russian marketer meets them in a real browser: an admin declares
a field, a client gets a name and a city, a mailing speaks to each client and carries a link of
their own; the preview shows three clients' texts; the engine sends them to the gateway stand-in;
clicks through the real web server show on the mailing's page; the client unsubscribes by link."""

from __future__ import annotations

import re

import pytest
import requests

from mailer.models import Client, Link, LinkKind, Mailing, MailingCounts, StopEntry
from tests.conftest import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_personal_mailing_with_links_and_its_clicks(
    page_ru,
    django_user_model,
    make_client,
    settings,
    screenshot_dir,
    engine,
    live_server,
):
    from playwright.sync_api import expect

    page = page_ru
    settings.MAILER_LINK_BASE = f"{live_server.url}/l"
    settings.SITE_URL = live_server.url
    user_with_role(django_user_model, "admin", "olga")
    anna = make_client("79161234567", name="Анна", tag="vip")
    make_client("79261234567", tag="vip")  # no name: the fallback
    make_client("79361234567", name="Пётр", tag="vip", attributes={})

    page.goto("/accounts/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "pw")
    page.click("button:has-text('Войти')")

    # The admin declares a field; a client's form has a box for it.
    page.goto("/clients/fields/")
    page.fill("#id_key", "city")
    page.fill("#id_label", "Город")
    page.click("button:has-text('Добавить')")
    expect(page.locator("#client-fields")).to_contain_text("{city}")
    page.goto(f"/clients/{anna.pk}/")
    expect(page.locator("label[for=id_field_city]")).to_have_text("Город")
    page.fill("#id_field_city", "Казань")
    page.click("button:has-text('Сохранить')")
    assert Client.objects.get(pk=anna.pk).attributes == {"city": "Казань"}

    # The text speaks to each client; the preview shows it as three of them get it.
    page.goto("/mailings/new/")
    page.fill(
        "#id_text", "{name|Добрый день}, скидки до 30% в {city|вашем городе}: https://shop.example.ru/winter"
    )
    examples = page.locator("#personal-examples")
    expect(examples).to_contain_text("79161234567: Анна, скидки до 30% в Казань:")
    expect(examples).to_contain_text("79261234567: Добрый день, скидки до 30% в вашем городе:")
    expect(page.locator("#personal")).to_contain_text("У каждого клиента свой текст")
    page.fill("#id_text", "{name|Добрый день}, скидки в {colour}")
    expect(page.locator("#text-length")).to_contain_text("Неизвестная переменная {colour}")
    page.fill(
        "#id_text", "{name|Добрый день}, скидки до 30% в {city|вашем городе}: https://shop.example.ru/winter"
    )
    expect(examples).to_contain_text(f"{live_server.url}/l/xxxxxxxxxx")
    screenshot_dir("ru-mailing-form-personal", page)
    page.check("#id_start_now")
    page.click("button:has-text('Создать рассылку')")
    mailing = Mailing.objects.get()

    engine(8)
    expect(page.locator("#state")).to_have_text("Завершена", timeout=20_000)
    page.reload()  # the summary follows the sending; the messages' table is read again
    expect(page.locator("#messages")).to_contain_text("Анна, скидки до 30% в Казань:")

    # Clicks through the real web server: once, and twice for one client.
    codes = list(Link.objects.filter(kind=LinkKind.CLICK).values_list("code", flat=True))
    assert len(codes) == 3 and all(re.fullmatch(r"[0-9A-Za-z]{10}", c) for c in codes)
    for code in (codes[0], codes[0], codes[1]):
        answer = requests.get(f"{live_server.url}/l/{code}", allow_redirects=False, timeout=10)
        assert answer.status_code == 302 and answer.headers["Location"] == "https://shop.example.ru/winter"
    counts = MailingCounts.objects.get(mailing=mailing)
    assert (counts.clicks, counts.clickers) == (3, 2)
    page.reload()
    expect(page.locator("#clicks")).to_contain_text("Переходов: 3, перешедших клиентов: 2")
    expect(page.locator("#clicks-chart")).to_be_visible()
    screenshot_dir("ru-mailing-clicks", page)

    # Unsubscribing by link: a page that asks first, in the reader's language.
    unsubscribe = Mailing.objects.create(
        text="Отписаться: {unsubscribe}",
        start_at=mailing.start_at,
        end_at=mailing.end_at,
        filter_tags=["vip"],
    )
    engine(4).join(20)  # the sender sends it and stops
    code = Link.objects.filter(kind=LinkKind.UNSUBSCRIBE, mailing=unsubscribe, phone=anna.phone).get().code
    page.goto(f"/u/{code}")
    expect(page.locator("h1")).to_have_text("Отписаться от наших сообщений?")
    expect(page.locator("main")).to_contain_text("+7 916 ***-**-67")
    screenshot_dir("ru-unsubscribe", page)
    page.click("#confirm")
    expect(page.locator("h1")).to_have_text("Вы отписались")
    assert StopEntry.objects.standing().filter(phone=anna.phone, source="link").exists()
