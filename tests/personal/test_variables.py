"""Variables in the text: {name} and declared fields, with a fallback ({name|клиент}); each client
gets their own text, exactly as recorded; one without a value (and no fallback) gets none."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from engine import scheduling
from mailer import sms
from mailer.models import (
    NO_VALUE_WHY,
    TOO_MANY_PARTS_WHY,
    Mailing,
    MailingCounts,
    MailingText,
    Message,
    MessageStatus,
    PersonalText,
)
from mailer.stats import sms_sent_of
from mailer.texts import Template
from tests.engine.conftest import drain
from tests.personal.conftest import HTMX


def test_a_template_renders_each_value_once_with_its_fallback():
    template = Template.parse("Здравствуйте, {name|клиент}! Ваш код {promo_code}. {city|}")
    assert template.keys == ("name", "promo_code", "city")
    assert template.render({"name": "Анна", "promo_code": "A7", "city": "Казань"}) == (
        "Здравствуйте, Анна! Ваш код A7. Казань"
    )
    assert template.render({"name": "", "promo_code": "A7"}) == "Здравствуйте, клиент! Ваш код A7. "
    assert template.render({"name": "Анна"}) is None  # no promo code and no fallback
    # A value is put in as it is: braces in it are not variables.
    assert template.render({"name": "{promo_code}", "promo_code": "{name}"}).startswith(
        "Здравствуйте, {promo_code}! Ваш код {name}."
    )
    assert template.as_written() == "Здравствуйте, клиент! Ваш код . "
    assert not Template.parse("Скидка 10% до воскресенья").is_personal


def test_an_unknown_variable_or_a_lone_brace_is_named():
    known = ["name", "city"]
    assert Template.parse("Привет, {имя}!").problems(known) == [
        "Unknown variable {имя}; the variables are {city}, {name}."
    ]
    assert Template.parse("Привет, {name!").problems(known) == [
        "A brace without its pair: write a variable as {name} or {name|fallback}."
    ]
    assert Template.parse("Привет, {name|друг}, {city}").problems(known) == []


def test_the_form_and_the_api_refuse_an_unknown_variable(api, fields, now):
    body = {
        "text": "Привет, {colour}!",
        "start_at": (now + timedelta(hours=1)).isoformat(),
        "end_at": (now + timedelta(hours=2)).isoformat(),
    }
    response = api.post("/api/v1/mailings/", body, format="json")
    assert response.status_code == 400
    assert response.json()["text"] == [
        "Unknown variable {colour}; the variables are {city}, {name}, {promo_code}, {unsubscribe}."
    ]
    created = api.post("/api/v1/mailings/", body | {"text": "Привет, {name|друг}! {city}"}, format="json")
    assert created.status_code == 201, created.json()


def test_the_preview_shows_three_clients_texts_the_range_of_parts_and_who_gets_none(
    manager_client, fields, make_client
):
    make_client("79161234567", name="Анна", attributes={"city": "Казань"})
    make_client("79261234567", attributes={"city": "Петропавловск-Камчатский " * 3})
    make_client("79361234567", name="Пётр")  # no city, and {city} has no fallback
    page = manager_client.get(
        "/mailings/audience/", {"text": "Здравствуйте, {name|клиент}! Скидка в городе {city}."}, **HTMX
    ).content.decode()
    assert "79161234567:</span> Здравствуйте, Анна! Скидка в городе Казань." in page
    assert "Здравствуйте, клиент! Скидка в городе Петропавловск-Камчатский" in page
    assert "from <strong>1</strong> to <strong>2</strong> SMS parts" in page
    assert "1 client has no value for a variable without a fallback and gets nothing." in page
    assert '<strong id="sms-estimate">3</strong> SMS (each client' in page  # 1 + 2, not 2 × 3

    page = manager_client.get("/mailings/audience/", {"text": "Привет, {colour}"}, **HTMX).content.decode()
    assert "Unknown variable {colour}" in page


@pytest.mark.django_db
def test_each_client_gets_their_own_text_and_it_is_recorded_exactly(
    make_client, make_deliverer, provider, now, manager_client, fields
):
    anna = make_client("79161234567", name="Анна", attributes={"city": "Казань"})
    nameless = make_client("79261234567", attributes={"city": "{name} город"})  # braces sent as they are
    no_city = make_client("79361234567", name="Пётр")
    long_city = make_client("79461234567", name="Ян", attributes={"city": "Петропавловск-Камчатский " * 3})
    mailing = Mailing.objects.create(
        text="Здравствуйте, {name|клиент}! Скидка в городе {city}.",
        start_at=now,
        end_at=now + timedelta(hours=1),
    )
    drain(make_deliverer(), now)

    by_client = {m.client_id: m for m in Message.objects.filter(mailing=mailing)}
    assert by_client[no_city.pk].status == MessageStatus.CANCELLED
    assert by_client[no_city.pk].last_error == NO_VALUE_WHY
    expected = {
        anna.pk: "Здравствуйте, Анна! Скидка в городе Казань.",
        nameless.pk: "Здравствуйте, клиент! Скидка в городе {name} город.",
        long_city.pk: f"Здравствуйте, Ян! Скидка в городе {long_city.attributes['city']}.",
    }
    assert {by_client[pk].pk: text for pk, text in expected.items()} == provider.record.texts
    assert dict(PersonalText.objects.values_list("message__client_id", "text")) == expected
    parts = sum(sms.measure(text).parts for text in expected.values())
    assert parts == 4 and sms_sent_of(mailing) == 4  # each message's own parts: 1 + 1 + 2
    assert MailingText.objects.get(mailing=mailing).parts_sent == 4
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None

    page = manager_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert "Здравствуйте, Анна! Скидка в городе Казань." in page
    export = b"".join(manager_client.get(f"/mailings/{mailing.pk}/messages.csv").streaming_content)
    rows = list(csv.reader(io.StringIO(export.decode("utf-8-sig")), delimiter=","))
    assert ["Здравствуйте, клиент! Скидка в городе {name} город." in row for row in rows].count(True) == 1
    api_texts = {m["client"]["id"]: m["text"] for m in _api_messages(manager_client, mailing)}
    assert api_texts[anna.pk] == expected[anna.pk] and api_texts[no_city.pk] is None


def _api_messages(browser, mailing):
    return browser.get(f"/api/v1/mailings/{mailing.pk}/messages/").json()["results"]


@pytest.mark.django_db
def test_max_parts_holds_for_each_client_s_own_text(
    make_client, make_deliverer, provider, now, settings, fields
):
    settings.MAILER_MAX_PARTS = 1
    short = make_client(attributes={"city": "Омск"})
    long = make_client(attributes={"city": "Петропавловск-Камчатский " * 3})
    mailing = Mailing(text="Скидка в городе {city}.", start_at=now, end_at=now + timedelta(hours=1))
    mailing.full_clean()  # as written ("Скидка в городе ."), it fits
    mailing.save()
    summary = mailing.audience_texts()
    assert (summary.clients, summary.over_cap, summary.fewest, summary.most) == (2, 1, 1, 2)
    drain(make_deliverer(max_parts=1), now)
    statuses = dict(Message.objects.values_list("client_id", "status"))
    assert statuses == {short.pk: MessageStatus.SENT, long.pk: MessageStatus.FAILED}
    assert Message.objects.get(client=long).last_error == TOO_MANY_PARTS_WHY
    assert len(provider.record.texts) == 1


@pytest.mark.django_db
def test_approval_weighs_the_sum_of_each_client_s_parts(make_client, now, settings, fields):
    settings.MAILER_APPROVAL_ABOVE = 2
    make_client(attributes={"city": "Омск"})
    make_client(attributes={"city": "Петропавловск-Камчатский " * 3})
    personal = Mailing.objects.create(
        text="Скидка в городе {city}.", start_at=now, end_at=now + timedelta(hours=1)
    )
    assert personal.sms_estimate() == 3 and personal.approval == "waiting"
    scheduling.tick(now)
    assert Mailing.objects.get(pk=personal.pk).state == "scheduled"


@pytest.mark.django_db
def test_a_test_send_of_a_personal_text_gives_a_known_client_their_own(
    make_client, make_deliverer, provider, fields
):
    from engine import testsends

    with pytest.raises(testsends.Refused, match=r"Unknown variable \{colour\}"):
        testsends.queue("Привет, {colour}", "79161234567")
    make_client("79161234567", name="Анна", attributes={"city": "Казань"})
    test = testsends.queue("Привет, {name|друг}! {city}", "79161234567, 79261234567")
    deliverer = make_deliverer()
    testsends.run_due(deliverer)
    assert testsends.collect(deliverer, wait=5)
    assert provider.record.texts[test.gateway_id(0)] == "Привет, Анна! Казань"
    assert provider.record.texts[test.gateway_id(1)] == "Привет, друг! "  # not a client: as written
