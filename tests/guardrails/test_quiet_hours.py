"""MAILER_QUIET_HOURS: advertising waits out the client's local night (22:00-09:00 unless set
otherwise), within its mailing's end; a mailing's own window narrows it; service is not held."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from dashboard.tables import waiting_why
from engine import scheduling
from mailer import guardrails
from mailer.models import QUIET_HOURS_WHY, Mailing, MailingKind, Message, MessageStatus
from mailer.windows import opens_at
from tests.conftest import load_settings
from tests.engine.conftest import drain
from tests.guardrails.conftest import HTMX

# 20:00 UTC: 23:00 in Moscow (quiet), 07:00 next morning in Vladivostok (quiet), 20:00 in UTC.
NOW = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _quiet(settings):
    settings.MAILER_QUIET_HOURS = "22:00-09:00"


def test_advertising_is_held_by_quiet_hours_and_service_is_not(settings):
    advertising = Mailing(kind=MailingKind.ADVERTISING)
    assert advertising.send_windows() == [(time(9), time(22))]
    assert Mailing(kind=MailingKind.SERVICE).send_windows() == []
    own = Mailing(kind=MailingKind.SERVICE, window_start=time(10), window_end=time(20))
    assert own.send_windows() == [(time(10), time(20))]
    settings.MAILER_QUIET_HOURS = ""
    assert advertising.send_windows() == []


def test_a_window_across_midnight_meets_quiet_hours_in_two_spans():
    spans = Mailing(window_start=time(20), window_end=time(10)).send_windows()
    # 23:00 UTC: quiet; then 09:00-10:00, then 20:00-22:00 again.
    assert opens_at(datetime(2026, 6, 1, 23, tzinfo=UTC), "UTC", spans) == datetime(2026, 6, 2, 9, tzinfo=UTC)
    assert opens_at(datetime(2026, 6, 2, 10, tzinfo=UTC), "UTC", spans) == datetime(
        2026, 6, 2, 20, tzinfo=UTC
    )
    assert opens_at(datetime(2026, 6, 2, 21, tzinfo=UTC), "UTC", spans) == datetime(
        2026, 6, 2, 21, tzinfo=UTC
    )
    # A window inside quiet hours never opens: refused on saving, for advertising only.
    inside = Mailing(
        text="x", start_at=NOW, end_at=NOW + timedelta(days=1), window_start=time(23), window_end=time(1)
    )
    assert opens_at(NOW, "UTC", inside.send_windows()) is None
    with pytest.raises(Exception, match="within quiet hours"):
        inside.full_clean()
    inside.kind = MailingKind.SERVICE
    inside.full_clean()


@pytest.mark.django_db
def test_the_engine_holds_advertising_until_quiet_hours_end(make_client, make_deliverer, provider):
    moscow = make_client(timezone="Europe/Moscow")  # 23:00: waits until 09:00 Moscow = 06:00 UTC
    vladivostok = make_client(timezone="Asia/Vladivostok")  # 07:00: waits until 09:00 = 23:00 UTC
    london = make_client(timezone="UTC")  # 20:00: at once
    end = NOW + timedelta(days=1)
    advertising = Mailing.objects.create(text="Sale", start_at=NOW, end_at=end)
    service = Mailing.objects.create(text="Order ready", kind=MailingKind.SERVICE, start_at=NOW, end_at=end)
    deliverer = make_deliverer()

    drain(deliverer, NOW)
    assert set(provider.record.accepted) == {m.pk for m in Message.objects.filter(mailing=service)} | {
        Message.objects.get(mailing=advertising, client=london).pk
    }
    held = {m.client_id: m for m in Message.objects.filter(mailing=advertising, status=MessageStatus.PENDING)}
    assert held[moscow.pk].next_attempt_at == datetime(2026, 6, 2, 6, tzinfo=UTC)
    assert held[vladivostok.pk].next_attempt_at == datetime(2026, 6, 1, 23, tzinfo=UTC)

    drain(deliverer, datetime(2026, 6, 1, 22, 59, tzinfo=UTC))  # still 08:59 in Vladivostok
    assert len(provider.record.accepted) == 4
    drain(deliverer, datetime(2026, 6, 1, 23, 0, tzinfo=UTC))
    assert provider.record.accepted.get(held[vladivostok.pk].pk) == 1
    drain(deliverer, datetime(2026, 6, 2, 6, 0, tzinfo=UTC))
    assert provider.record.accepted.get(held[moscow.pk].pk) == 1
    assert set(provider.record.accepted.values()) == {1} and len(provider.record.accepted) == 6


@pytest.mark.django_db
def test_quiet_hours_that_outlast_the_mailing_expire_it_saying_why(make_client, make_deliverer, provider):
    make_client(timezone="Europe/Moscow")  # 23:00; quiet until 09:00, after the end
    mailing = Mailing.objects.create(text="Sale", start_at=NOW, end_at=NOW + timedelta(hours=3))
    drain(make_deliverer(), NOW)
    message = Message.objects.get(mailing=mailing)
    assert (message.status, message.last_error) == (MessageStatus.EXPIRED, QUIET_HOURS_WHY)
    assert not provider.record.accepted


@pytest.mark.django_db
def test_a_message_whose_client_enters_quiet_hours_waits_at_send_time(make_client, make_deliverer, provider):
    """Resolved in the day, its turn comes at 22:30 client-local (a queue behind a big mailing, a
    gateway that was down): checked again when its turn comes, it waits until 09:00."""
    client = make_client(timezone="UTC")
    day = datetime(2026, 6, 1, 12, tzinfo=UTC)
    mailing = Mailing.objects.create(text="Sale", start_at=day, end_at=day + timedelta(days=2))
    scheduling.tick(day)  # started, its audience resolved: due at once
    assert Message.objects.get(mailing=mailing).next_attempt_at == day
    late = datetime(2026, 6, 1, 22, 30, tzinfo=UTC)
    drain(make_deliverer(), late)
    message = Message.objects.get(mailing=mailing, client=client)
    assert message.status == MessageStatus.PENDING
    assert message.next_attempt_at == datetime(2026, 6, 2, 9, tzinfo=UTC)
    assert not provider.record.accepted


@pytest.mark.django_db
def test_the_form_says_when_each_zone_gets_it(manager_client, make_client):
    make_client(timezone="Asia/Vladivostok")
    make_client(timezone="UTC")
    start = "2026-06-01T20:00:00+00:00"  # 06:00 next day in Vladivostok: quiet until 09:00
    query = {"text": "Sale", "start_at": start, "end_at": "2026-06-03T20:00:00+00:00"}
    html = manager_client.get("/mailings/audience/", query | {"kind": "advertising"}, **HTMX).content.decode()
    assert "Advertising is not sent in quiet hours, 22:00–09:00 client's time." in html
    assert "Clients in Vladivostok (UTC+10) get it from 09:00 their time" in html
    assert "Clients in UTC" not in html  # 20:00 there: at once
    html = manager_client.get("/mailings/audience/", query | {"kind": "service"}, **HTMX).content.decode()
    assert "quiet hours" not in html and "Vladivostok" not in html
    # Its own window: said for every zone it holds back.
    window = {"kind": "service", "window_start": "10:00", "window_end": "12:00"}
    html = manager_client.get("/mailings/audience/", query | window, **HTMX).content.decode()
    assert "Clients in Vladivostok (UTC+10) get it from 10:00 their time" in html
    assert "Clients in UTC get it from 10:00 their time" in html
    form = manager_client.get("/mailings/new/").content.decode()
    assert "advertising never in quiet hours (22:00–09:00, client" in form


@pytest.mark.django_db
def test_a_held_message_says_it_waits_out_quiet_hours(manager_client, make_client, make_deliverer, provider):
    make_client(timezone="Europe/Moscow")
    mailing = Mailing.objects.create(text="Sale", start_at=NOW, end_at=NOW + timedelta(days=1))
    drain(make_deliverer(), NOW)
    message = Message.objects.select_related("mailing", "client").get(mailing=mailing)
    assert message.next_attempt_at == datetime(2026, 6, 2, 6, tzinfo=UTC)  # 09:00 in Moscow
    assert waiting_why(message, NOW) == "quiet hours: until 09:00 client's time, in 10\xa0hours"
    assert manager_client.get(f"/mailings/{mailing.pk}/").status_code == 200


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("22:00-09:00", "(datetime.time(22, 0), datetime.time(9, 0))"), ("", "None"), ("off", "None")],
)
def test_quiet_hours_setting(value, parsed):
    result = load_settings("MAILER_QUIET_HOURS", MAILER_QUIET_HOURS=value)
    assert result.returncode == 0, result.stderr
    assert guardrails.parse_hours(result.stdout.strip()).__repr__() == parsed


@pytest.mark.parametrize("value", ["22-09", "25:00-09:00", "09:00-09:00", "night"])
def test_a_bad_quiet_hours_setting_is_refused_at_start(value):
    result = load_settings("MAILER_QUIET_HOURS", MAILER_QUIET_HOURS=value)
    assert result.returncode != 0 and "MAILER_QUIET_HOURS" in result.stderr
