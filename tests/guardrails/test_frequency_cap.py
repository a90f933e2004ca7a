"""MAILER_FREQUENCY_CAP: how many advertising messages one client gets per local day and week,
across mailings. Over it a message waits until the cap allows it, or expires at its mailing's end;
two senders racing for one client never both send."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from engine import frequency, scheduling
from mailer import guardrails
from mailer.models import (
    CAP_HELD_WHY,
    CAP_WHY,
    Client,
    Mailing,
    MailingCounts,
    MailingKind,
    Message,
    MessageStatus,
)
from tests.conftest import load_settings
from tests.engine.conftest import drain, start_worker
from tests.guardrails.conftest import HTMX

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # a Wednesday; 19:00 in Novosibirsk


def test_the_setting():
    assert guardrails.parse_cap("2/day, 5/week") == {"day": 2, "week": 5}
    assert guardrails.parse_cap("") == guardrails.parse_cap("off") == {}
    for bad in ("2", "0/day", "1/month", "1/day,2/day"):
        with pytest.raises(ValueError):
            guardrails.parse_cap(bad)
    result = load_settings("MAILER_FREQUENCY_CAP", MAILER_FREQUENCY_CAP="1/hour")
    assert result.returncode != 0 and "MAILER_FREQUENCY_CAP" in result.stderr


def test_days_and_weeks_are_the_client_s():
    # 12:00 UTC on Wednesday is 19:00 in Novosibirsk (UTC+7): its day ends at 17:00 UTC, its week
    # (from Monday) at 17:00 UTC on Sunday.
    assert frequency.period_end(NOW, "Asia/Novosibirsk", "day") == datetime(2026, 6, 3, 17, tzinfo=UTC)
    assert frequency.period_end(NOW, "Asia/Novosibirsk", "week") == datetime(2026, 6, 7, 17, tzinfo=UTC)
    tally = frequency.Tally({"day": 2, "week": 3})
    tally.sent[1] = [datetime(2026, 6, 2, 18, tzinfo=UTC)]  # Wednesday 01:00 there: today
    tally.sent[2] = [
        datetime(2026, 6, 2, 16, tzinfo=UTC),
        datetime(2026, 6, 1, 9, tzinfo=UTC),
    ]  # Tuesday, Monday
    assert tally.admit(1, "Asia/Novosibirsk", NOW) == (
        None,
        datetime(2026, 6, 3, 17, tzinfo=UTC),
    )  # fills today
    assert tally.admit(1, "Asia/Novosibirsk", NOW) == (datetime(2026, 6, 3, 17, tzinfo=UTC), None)  # full
    assert tally.admit(2, "Asia/Novosibirsk", NOW) == (
        None,
        datetime(2026, 6, 7, 17, tzinfo=UTC),
    )  # fills the week
    assert tally.admit(2, "Asia/Novosibirsk", NOW) == (datetime(2026, 6, 7, 17, tzinfo=UTC), None)


def _mailings(n: int, end: datetime = NOW + timedelta(days=2), **fields) -> list[Mailing]:
    return [Mailing.objects.create(text=f"Sale {i}", start_at=NOW, end_at=end, **fields) for i in range(n)]


@pytest.mark.django_db
def test_a_round_reads_what_others_hold_and_what_was_sent_as_far_back_as_its_cap_needs(make_client):
    """Tally.load: the round's own messages (its lease) are not in flight elsewhere; another
    round's lease is; a message sent three days ago counts for a weekly cap, and a daily cap does
    not read it."""
    client, other = make_client(timezone="Asia/Novosibirsk"), make_client(timezone="UTC")
    mine, theirs, old, service = _mailings(3) + _mailings(1, kind=MailingKind.SERVICE)
    lease_until = NOW + timedelta(seconds=60)
    for mailing, lease in ((mine, "me/1"), (theirs, "them/7"), (service, "them/7")):
        Message.objects.create(mailing=mailing, client=client, locked_until=lease_until, locked_by=lease)
    Message.objects.create(
        mailing=old, client=client, status=MessageStatus.SENT, sent_at=NOW - timedelta(days=3)
    )
    Message.objects.create(mailing=mine, client=other, locked_until=lease_until, locked_by="me/1")

    weekly = frequency.Tally.load({"day": 1, "week": 5}, {client.pk, other.pk}, "me/1", NOW)
    assert dict(weekly.busy) == {client.pk: 1}  # theirs; not mine, not the service message
    assert dict(weekly.sent) == {client.pk: [NOW - timedelta(days=3)]}
    daily = frequency.Tally.load({"day": 1}, {client.pk, other.pk}, "me/1", NOW)
    assert dict(daily.busy) == {client.pk: 1} and not daily.sent


def test_a_second_advertising_message_waits_for_the_client_s_next_day(
    settings, make_client, make_deliverer, provider
):
    settings.MAILER_FREQUENCY_CAP = "1/day"
    client = make_client(timezone="Asia/Novosibirsk")
    first, second = _mailings(2)
    [service] = _mailings(1, kind=MailingKind.SERVICE)  # neither capped nor counted
    deliverer = make_deliverer()
    drain(deliverer, NOW)
    by_mailing = {m.mailing_id: m for m in Message.objects.filter(client=client)}
    sent, held = sorted(
        (by_mailing[first.pk], by_mailing[second.pk]), key=lambda m: m.status != MessageStatus.SENT
    )
    assert (sent.status, held.status, held.last_error) == (
        MessageStatus.SENT,
        MessageStatus.PENDING,
        CAP_HELD_WHY,
    )
    assert held.next_attempt_at == datetime(2026, 6, 3, 17, tzinfo=UTC)  # midnight in Novosibirsk
    assert by_mailing[service.pk].status == MessageStatus.SENT
    client.refresh_from_db()
    assert client.capped_until == datetime(2026, 6, 3, 17, tzinfo=UTC)
    from mailer import stats

    assert stats.guards_of(Mailing.objects.get(pk=held.mailing_id))["cap_held"] == 1

    drain(deliverer, datetime(2026, 6, 3, 16, 59, tzinfo=UTC))
    assert len(provider.record.accepted) == 2
    drain(deliverer, datetime(2026, 6, 3, 17, 0, tzinfo=UTC))
    assert Counter(provider.record.accepted.values()) == {1: 3}


@pytest.mark.django_db
def test_over_the_cap_until_the_end_expires_saying_why(settings, make_client, make_deliverer, provider):
    settings.MAILER_FREQUENCY_CAP = "1/day"
    make_client(timezone="UTC")
    mailings = _mailings(2, end=NOW + timedelta(hours=3))
    drain(make_deliverer(), NOW)
    expired = Message.objects.get(status=MessageStatus.EXPIRED)
    assert expired.last_error == CAP_WHY
    assert MailingCounts.objects.get(mailing_id=expired.mailing_id).cap_expired == 1
    assert len(provider.record.accepted) == 1 and {
        m.state for m in Mailing.objects.filter(pk__in=[m.pk for m in mailings])
    }


@pytest.mark.django_db
def test_a_client_held_in_another_round_is_not_sent_twice(settings, make_client, make_deliverer, provider):
    """Two senders: the first has claimed the client's message of one mailing and not yet sent it;
    the second, deciding meanwhile, sees that lease and holds its message of the other."""
    settings.MAILER_FREQUENCY_CAP = "1/day"
    make_client(timezone="UTC")
    _mailings(2)
    scheduling.tick(NOW)
    one, two = make_deliverer("w1", batch_size=1), make_deliverer("w2", batch_size=1)
    first = one.prepare(NOW)
    assert len(first.outbound) == 1  # it goes
    second = two.prepare(NOW)
    [(held_id, outcome)] = second.decisions.items()
    assert outcome.fields["last_error"] == CAP_HELD_WHY
    assert outcome.fields["next_attempt_at"] == NOW + frequency.BUSY_RETRY
    one.submit(first, None)
    one.collect()
    one.flush()
    two.submit(second, None)
    two.collect()
    two.flush()
    drain(two, NOW + frequency.BUSY_RETRY)  # tried again: the day is now full
    assert Message.objects.get(pk=held_id).next_attempt_at == datetime(2026, 6, 4, tzinfo=UTC)
    assert Counter(provider.record.accepted.values()) == {1: 1}


@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_never_exceed_the_cap(settings, make_client, make_deliverer, provider):
    """Three campaigns to the same 40 clients, each client's three messages next to each other in
    the queue, so the two workers' rounds keep splitting one client's messages between them while
    the gateway takes 100 ms to answer."""
    settings.MAILER_FREQUENCY_CAP = "1/day"
    provider.behaviour.latency = 0.1
    clients = [make_client() for _ in range(40)]
    now = datetime.now(UTC)
    mailings = [
        Mailing.objects.create(
            text=f"Sale {i}", start_at=now - timedelta(seconds=1), end_at=now + timedelta(days=2)
        )
        for i in range(3)
    ]
    for mailing in mailings:
        assert mailing.start(now)
    Mailing.objects.update(resolved_version=1)  # its audience is written here, interleaved
    pairs = [(client, mailing) for client in clients for mailing in mailings]
    Message.objects.bulk_create(
        Message(mailing=mailing, client=client, next_attempt_at=now - timedelta(milliseconds=len(pairs) - i))
        for i, (client, mailing) in enumerate(pairs)
    )
    MailingCounts.objects.update(pending=40)
    workers = [start_worker(provider.url, f"w{i}", seconds=20, batch_size=4) for i in range(2)]
    for worker in workers:
        worker.join(40)
    # Two rounds that each saw the other's lease on a client both held it for a moment
    # (frequency.BUSY_RETRY); the workers have stopped by then: one more pass sends those.
    drain(make_deliverer("w3"), datetime.now(UTC) + frequency.BUSY_RETRY)
    sent = Message.objects.filter(id__in=provider.record.accepted)
    assert set(provider.record.accepted.values()) == {1}
    assert Counter(sent.values_list("client_id", flat=True)) == {c.pk: 1 for c in clients}
    assert Message.objects.filter(status=MessageStatus.PENDING, last_error=CAP_HELD_WHY).count() == 80


@pytest.mark.django_db
def test_the_preview_counts_clients_at_their_cap(settings, manager_client, make_client):
    settings.MAILER_FREQUENCY_CAP = "1/day"
    make_client(tag="vip")
    full = make_client(tag="vip")
    Client.objects.filter(pk=full.pk).update(capped_until=datetime.now(UTC) + timedelta(hours=1))
    html = manager_client.get("/mailings/audience/", {"filter_tags": "vip"}, **HTMX).content.decode()
    assert '<strong id="audience-count">2</strong>' in html
    assert (
        "1 of these clients has had as much advertising as the frequency cap allows for now and will wait."
        in html
    )
    html = manager_client.get(
        "/mailings/audience/", {"filter_tags": "vip", "kind": "service"}, **HTMX
    ).content.decode()
    assert "frequency cap" not in html
    settings.MAILER_FREQUENCY_CAP = ""
    html = manager_client.get(
        "/mailings/audience/", {"filter_tags": "vip", "audience_key": "x"}, **HTMX
    ).content.decode()
    assert "frequency cap" not in html
