"""Per-mailing counts (MailingCounts) kept with every status change, read by the statistics, and
checked against the rows by `reconcile`."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engine import scheduling
from mailer import stats
from mailer.models import Mailing, MailingCounts, MailingState, Message, MessageStatus
from tests.engine.conftest import drain

pytestmark = pytest.mark.django_db


def assert_counts_right(*mailings: Mailing) -> None:
    for mailing in mailings:
        assert MailingCounts.reconcile(mailing.pk, repair=False) is None


def test_every_engine_path_keeps_the_counts(make_mailing, make_client, make_deliverer, provider, now):
    """Sent, retried, failed at once, cancelled for a deleted client, a filter edit, a cancel, the
    end: after each, the counts equal a recount of the rows."""
    provider.behaviour.error_rate = 0.2
    for i in range(40):
        make_client(f"7900{i:07d}", tag="a" if i % 2 else "b")
    gone = make_client("79010000002", tag="a")
    refused = make_client("79010000003", tag="a")
    mailing = make_mailing(filter_tags=["a"])
    scheduling.tick(now)
    assert_counts_right(mailing)
    gone.delete()
    original = provider.answer
    refused_id = Message.objects.get(client=refused).id

    def answer(method, path, headers, body):
        if path.endswith(f"/{refused_id}"):
            return 400, b'{"code": 400}', {}
        return original(method, path, headers, body)

    provider.answer = answer
    drain(make_deliverer())
    provider.answer = original
    assert_counts_right(mailing)
    assert stats.counts_of(mailing) == dict.fromkeys(stats.STATUSES, 0) | {
        "sent": 20,
        "failed": 1,
        "cancelled": 1,
        "total": 22,
    }

    running = make_mailing(filter_tags=["b"])
    scheduling.tick(now)
    running.refresh_from_db()
    running.filter_tags = ["a"]  # the pending of "b" are cancelled, those of "a" added
    running.save()
    scheduling.tick(now)
    assert_counts_right(running)
    assert stats.counts_of(running)["cancelled"] == 20 and stats.counts_of(running)["pending"] == 21
    running.refresh_from_db()
    running.cancel()
    assert_counts_right(running)
    assert stats.counts_of(running)["cancelled"] == 41

    ending = make_mailing(end_at=now + timedelta(minutes=5))
    scheduling.tick(now)
    scheduling.tick(now + timedelta(minutes=6))  # it ends with everything still pending
    assert_counts_right(ending)
    assert stats.counts_of(ending)["expired"] == 41


def test_resolving_twice_counts_once(make_mailing, make_client, now):
    for i in range(7):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    scheduling.tick(now)
    Mailing.objects.filter(pk=mailing.pk).update(resolved_version=0)  # as if a second worker ran it
    mailing.refresh_from_db()
    assert scheduling.resolve_audience(mailing, now) == 0
    assert stats.counts_of(mailing)["pending"] == 7
    assert_counts_right(mailing)


def test_single_rows_saved_or_deleted_through_the_orm_count_too(make_mailing, make_client, now):
    mailing = make_mailing()
    message = Message.objects.create(mailing=mailing, client=make_client())
    message.status, message.sent_at = MessageStatus.SENT, now
    message.save()
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.FAILED)
    assert stats.counts_of(mailing) | {"total": 0} == dict.fromkeys(stats.STATUSES, 0) | {
        "sent": 1,
        "failed": 1,
        "total": 0,
    }
    assert stats.timing(mailing)["first_sent_at"] == now
    message.delete()
    assert stats.counts_of(mailing)["sent"] == 0 and stats.counts_of(mailing)["total"] == 1
    assert_counts_right(mailing)


def test_the_per_minute_counts_feed_the_chart_and_are_reconciled(make_mailing, make_client, now):
    from mailer.models import SentMinute

    mailing = make_mailing()
    minute = SentMinute.of(now)
    for seconds in (1, 2, 61):
        Message.objects.create(
            mailing=mailing,
            client=make_client(),
            status=MessageStatus.SENT,
            sent_at=minute + timedelta(seconds=seconds),
        )
    kept = dict(SentMinute.objects.filter(mailing=mailing).values_list("minute", "sent"))
    assert kept == {minute: 2, minute + timedelta(minutes=1): 1}
    SentMinute.objects.filter(mailing=mailing).delete()
    assert MailingCounts.reconcile(mailing.pk) == {"sent per minute": (0, 3)}
    assert dict(SentMinute.objects.filter(mailing=mailing).values_list("minute", "sent")) == kept
    assert_counts_right(mailing)


def test_statistics_never_read_the_messages(make_mailing, make_client):
    mailing = make_mailing()
    for _ in range(3):
        Message.objects.create(mailing=mailing, client=make_client())
    with CaptureQueriesContext(connection) as queries:
        assert stats.counts_of(mailing)["pending"] == 3
        assert stats.totals(Mailing.objects.all())["total"] == 3
        assert list(stats.with_counts(Mailing.objects.all()))[0].pending_count == 3
        stats.timing(mailing)
        stats.rates([mailing.pk])
    assert not [q["sql"] for q in queries if '"mailer_message"' in q["sql"]]


def test_reconcile_reports_and_repairs_what_differs(make_mailing, make_client):
    right, wrong = make_mailing(), make_mailing()
    for mailing in (right, wrong):
        Message.objects.create(mailing=mailing, client=make_client())
    MailingCounts.objects.filter(mailing=wrong).update(pending=5, sent=2)
    out = StringIO()
    with pytest.raises(SystemExit) as exit:
        call_command("reconcile", "--check", stdout=out)
    assert exit.value.code == 1
    assert f"mailing {wrong.pk}: pending 5 -> 1, sent 2 -> 0" in out.getvalue()
    assert f"mailing {right.pk}:" not in out.getvalue()
    assert "sent per minute" not in out.getvalue()
    assert MailingCounts.objects.get(mailing=wrong).pending == 5  # --check repairs nothing

    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "2 mailings checked, 1 repaired." in out.getvalue()
    assert_counts_right(right, wrong)
    out = StringIO()
    call_command("reconcile", "--check", stdout=out)
    assert "0 differ" in out.getvalue()


def test_retention_deletes_old_messages_in_the_background_and_keeps_the_counts(
    make_mailing, make_client, now, settings
):
    from mailer import tasks
    from mailer.models import MailingState

    old = make_mailing(start_at=now - timedelta(days=41), end_at=now - timedelta(days=40))
    recent = make_mailing(start_at=now - timedelta(days=11), end_at=now - timedelta(days=10))
    running = make_mailing(start_at=now - timedelta(days=50), end_at=now + timedelta(days=1))
    for mailing in (old, recent, running):
        for status in (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.PENDING):
            Message.objects.create(
                mailing=mailing, client=make_client(), status=status, sent_at=mailing.start_at
            )
    Mailing.objects.filter(pk__in=[old.pk, recent.pk]).update(state=MailingState.FINISHED)
    Mailing.objects.filter(pk=old.pk).update(finished_at=now - timedelta(days=40))
    before = stats.counts_of(old)

    assert tasks.housekeeping().endswith(", 0 old messages deleted")  # off by default
    settings.MAILER_MESSAGE_RETENTION_DAYS = 30
    MailingCounts.PURGE_CHUNK = 2  # several transactions
    try:
        assert tasks.housekeeping().endswith(", 3 old messages deleted")
    finally:
        MailingCounts.PURGE_CHUNK = 5000
    assert not Message.objects.filter(mailing=old).exists()
    assert stats.counts_of(old) == before and stats.timing(old)["first_sent_at"] == old.start_at
    assert MailingCounts.objects.get(mailing=old).purged_at is not None
    assert Message.objects.filter(mailing=recent).count() == 3  # not old enough
    assert Message.objects.filter(mailing=running).count() == 3  # not over
    out = StringIO()
    call_command("reconcile", "--check", stdout=out)  # the purged mailing isn't "wrong"
    assert "3 mailings checked, 0 differ." in out.getvalue()


def test_sent_per_text_is_kept_and_reconciled(make_mailing, make_client, make_deliverer, provider):
    from mailer.models import MailingText

    for _ in range(6):
        make_client()
    mailing = make_mailing(text="first")
    drain(make_deliverer(batch_size=2), rounds=1)
    mailing.refresh_from_db()
    mailing.text = "second"
    mailing.save_edit(mailing.revision)
    drain(make_deliverer(batch_size=2))
    sent = dict(MailingText.objects.filter(mailing=mailing).values_list("text", "sent"))
    assert sent == {"first": 2, "second": 4}
    assert_counts_right(mailing)
    MailingText.objects.filter(mailing=mailing).update(sent=0)
    assert MailingCounts.reconcile(mailing.pk) == {"sent per text": (0, 6)}
    assert dict(MailingText.objects.filter(mailing=mailing).values_list("text", "sent")) == sent


def test_an_orm_save_that_unsends_or_moves_a_message_moves_its_minute_and_text(
    make_mailing, make_client, now
):
    mailing = make_mailing()
    message = Message.objects.create(
        mailing=mailing,
        client=make_client(),
        status=MessageStatus.SENT,
        sent_at=now,
        sent_text=mailing.current_text,
    )
    assert_counts_right(mailing)
    message = Message.objects.get(pk=message.pk)
    message.sent_at = now + timedelta(minutes=3)  # same status, another minute
    message.save()
    from mailer.models import SentMinute

    minutes = dict(SentMinute.objects.filter(mailing=mailing).exclude(sent=0).values_list("minute", "sent"))
    assert minutes == {SentMinute.of(message.sent_at): 1}  # (the sent span only widens, by design)
    mailing.current_text.refresh_from_db()
    assert mailing.current_text.sent == 1
    message.status, message.sent_at = MessageStatus.FAILED, None
    message.save()
    assert_counts_right(mailing)
    assert stats.counts_of(mailing)["failed"] == 1 and stats.counts_of(mailing)["sent"] == 0


@pytest.mark.django_db(transaction=True)
def test_two_resolvers_writing_one_chunk_at_once_count_it_once(make_mailing, make_client, now, monkeypatch):
    """A resolver whose lease ran out goes on while another takes over: both write the same clients
    at the same moment. The second's rows wait for the first's commit and are skipped, so the
    messages are written and counted once."""
    import threading

    from django import db

    for i in range(30):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    Mailing.objects.filter(pk=mailing.pk).update(state=MailingState.RUNNING)
    mailing.refresh_from_db()
    first_wrote, second_began = threading.Event(), threading.Event()
    add = MailingCounts.add

    def slow_add(mailing_id, changes, *args):
        if threading.current_thread().name == "first":  # holds its rows, not yet committed
            first_wrote.set()
            second_began.wait(10)
            time.sleep(0.3)  # the second is at its INSERT meanwhile, waiting for these rows
        return add(mailing_id, changes, *args)

    monkeypatch.setattr(MailingCounts, "add", slow_add)
    added = {}

    def resolve(name: str) -> None:
        try:
            added[name] = scheduling._resolve_chunk(scheduling.Resolution(mailing, 1, now), 100)
        finally:
            db.connections.close_all()

    first = threading.Thread(target=resolve, args=("first",), name="first")
    first.start()
    assert first_wrote.wait(10)
    second = threading.Thread(target=resolve, args=("second",), name="second")
    second.start()
    second_began.set()
    first.join(20)
    second.join(20)
    assert added == {"first": 30, "second": 30}  # both read all 30 clients
    assert Message.objects.filter(mailing=mailing).count() == 30
    assert stats.counts_of(mailing)["pending"] == 30
    assert_counts_right(mailing)
