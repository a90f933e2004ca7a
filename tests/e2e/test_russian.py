"""The product as a Russian marketer in Vladivostok meets it, in a real browser set to Russian and to
that time zone: the pages in Russian, the browser's zone proposed and taken, a mailing typed in
local time and Russian date format, its length and cost counted as it is typed, a test sent to a
handset, a client on the stop list, the audit log, the switcher."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Profile
from mailer.models import Mailing
from tests.conftest import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_day_in_russian_from_vladivostok(
    page_ru, django_user_model, make_client, settings, screenshot_dir, engine
):
    from playwright.sync_api import expect

    page = page_ru
    settings.TIME_ZONE = "Europe/Moscow"
    user_with_role(django_user_model, "admin", "olga")  # an admin: she reads the audit log at the end
    vips = [make_client(tag="vip") for _ in range(4)]
    make_client(tag="retail")
    make_client(tag="vip", consent_at=None)  # never agreed to advertising
    settings.MAILER_QUIET_HOURS = "22:00-09:00"

    page.goto("/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "pw")
    page.click("button:has-text('Войти')")
    expect(page.locator("h1")).to_have_text("Главная")

    # The first page proposes the browser's time zone; taking it changes every date shown.
    proposal = page.locator("#timezone-proposal")
    expect(proposal).to_contain_text("Ваш браузер в поясе Asia/Vladivostok")
    expect(page.locator("#current-zone")).to_have_text("Москва (UTC+3)")
    proposal.locator("button:has-text('Использовать мой пояс')").click()
    expect(page.locator("#current-zone")).to_have_text("Владивосток (UTC+10)")
    expect(page.locator("#timezone-proposal")).to_have_count(0)
    assert Profile.objects.get(user__username="olga").timezone == "Asia/Vladivostok"

    # A client asked to get nothing more: the stop list.
    page.click("#main-nav >> text=Стоп-лист")
    page.fill("#id_phone", "+" + vips[0].phone)
    page.fill("#id_reason", "попросил по телефону")
    page.click("button:has-text('Добавить в стоп-лист')")
    expect(page.locator(".alert-success")).to_contain_text(f"{vips[0].phone} в стоп-листе")
    expect(page.locator("#table")).to_contain_text("попросил по телефону")
    screenshot_dir("ru-stop-list", page)

    # A new mailing: the length and the cost are counted while the text is typed.
    page.click("#main-nav >> text=Рассылки")
    page.click("text=Новая рассылка")
    expect(page.locator("#audience-count")).to_have_text("4")
    page.fill("#id_text", "Hello")
    expect(page.locator("#text-length")).to_contain_text("5 символов · GSM-7 · 1 часть SMS на сообщение")
    page.fill("#id_text", "Скидка 20% на всё! " * 4)
    expect(page.locator("#text-length")).to_contain_text("75 символов · UCS-2 · 2 части SMS на сообщение")
    expect(page.locator("#text-length")).to_contain_text("Кириллица")
    page.check("input[name=filter_tags][value=vip]")
    expect(page.locator("#audience-count")).to_have_text("3")
    expect(page.locator("#audience-excluded")).to_have_text("1 клиент из стоп-листа не войдёт.")
    expect(page.locator("#audience-no-consent")).to_have_text("1 клиент без согласия на рекламу не войдёт.")
    expect(page.locator("#sms-estimate")).to_have_text("6")
    # A service message asks no consent; advertising (the default) does.
    page.check("input[name=kind][value=service]")
    expect(page.locator("#audience-count")).to_have_text("4")
    expect(page.locator("#audience-no-consent")).to_have_count(0)
    page.check("input[name=kind][value=advertising]")
    expect(page.locator("#audience-count")).to_have_text("3")
    # Dates typed as a Russian types them, in the user's own zone.
    expect(page.locator("#id_start_at")).to_have_attribute("placeholder", "ДД.ММ.ГГГГ чч:мм")
    page.fill("#id_start_at", "03.12.2030 09:00")
    page.fill("#id_end_at", "03.12.2030 21:00")
    # 09:00 in Vladivostok is 23:00 the day before for the clients (UTC): quiet hours, said in words.
    hours = page.locator("#audience-hours")
    expect(hours).to_contain_text("Реклама не отправляется в тихие часы, 22:00–09:00 по времени клиента.")
    expect(hours).to_contain_text(
        "Клиенты в зоне «UTC» получат её с 09:00 по своему времени (03.12.2030 19:00 по вашему)."
    )
    screenshot_dir("ru-mailing-form", page)
    page.click("button:has-text('Создать рассылку')")
    expect(page.locator(".alert-success")).to_contain_text("создана; начнётся 03.12.2030 09:00")
    mailing = Mailing.objects.get()
    assert mailing.start_at == datetime(2030, 12, 3, 9, tzinfo=ZoneInfo("Asia/Vladivostok"))
    expect(page.locator("#summary")).to_contain_text("03.12.2030 09:00 – 03.12.2030 21:00")
    expect(page.locator("#sms")).to_contain_text("75 символов, UCS-2: 2 части на сообщение")
    expect(page.locator("#state")).to_have_text("Запланирована")

    # Send a test to a handset: a sender takes it within a moment, through the gateway stand-in.
    engine(10)
    page.fill("#id_test_phones", "+7 916 123-45-67")
    page.click("#send-test")
    expect(page.locator("#test-send-state")).to_have_text("Передано шлюзу", timeout=15_000)
    expect(page.locator("#test-send-result")).to_contain_text("79161234567: принято шлюзом")
    screenshot_dir("ru-mailing-detail", page)

    for name, url in (
        ("ru-home", "/"),
        ("ru-mailings", "/mailings/"),
        ("ru-statistics", "/statistics/"),
        ("ru-clients", "/clients/"),
    ):
        page.goto(url)
        expect(page.locator("html")).to_have_attribute("lang", "ru")
        screenshot_dir(name, page)

    # The audit log: what she did, with the changed fields, in Russian.
    page.click("#account-nav >> text=Журнал действий")
    page.select_option("#id_actor", "olga")
    table = page.locator("#table")
    expect(table).to_contain_text("добавлено в стоп-лист")
    expect(table).to_contain_text("тест отправлен")
    expect(table).to_contain_text(f"рассылка {mailing.pk}")
    expect(table).to_contain_text("текст: – → Скидка 20% на всё!")
    screenshot_dir("ru-audit", page)
    page.goto("/clients/")

    # The switcher: English at once, and kept on the next pages; then back.
    page.click("#language-switcher button[value=en]")
    expect(page.locator("h1")).to_have_text("Clients")
    page.click("#main-nav >> text=Mailings")
    expect(page.locator("h1")).to_have_text("Mailings")
    page.click("#language-switcher button[value=ru]")
    expect(page.locator("h1")).to_have_text("Рассылки")
    assert Profile.objects.get(user__username="olga").language == "ru"
