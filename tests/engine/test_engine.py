"""The sending engine against the real stand-in of the gateway on loopback (no mocks)."""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as clock

import pytest
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from engine import scheduling
from mailer import windows
from mailer.models import GatewayState, Mailing, MailingCounts, MailingState, Message, MessageStatus
from tests.engine.conftest import TOKEN, drain, kill, start_worker


def statuses(mailing: Mailing) -> dict[str, int]:
    return dict(Message.objects.filter(mailing=mailing).values_list("status").annotate(n=Count("id")))


def clients(make_client, n: int, **fields):
    return [make_client(**fields) for _ in range(n)]


@pytest.mark.django_db
class TestScheduling:
    def test_future_mailing_starts_by_itself_at_start_time(self, make_mailing, make_client, now):
        clients(make_client, 3)
        mailing = make_mailing(start_at=now + timedelta(minutes=5), end_at=now + timedelta(hours=1))
        scheduling.tick(now + timedelta(minutes=4, seconds=59))
        mailing.refresh_from_db()
        assert mailing.state == MailingState.SCHEDULED and not mailing.messages.exists()
        scheduling.tick(now + timedelta(minutes=5))
        mailing.refresh_from_db()
        assert mailing.state == MailingState.RUNNING
        assert mailing.started_at == now + timedelta(minutes=5)
        assert mailing.messages.filter(status=MessageStatus.PENDING).count() == 3

    def test_mailing_already_over_never_starts(self, make_mailing, make_client, now):
        make_client()
        mailing = make_mailing(start_at=now - timedelta(hours=2), end_at=now - timedelta(hours=1))
        scheduling.tick(now)
        mailing.refresh_from_db()
        assert mailing.state == MailingState.FINISHED and not mailing.messages.exists()

    def test_audience_is_resolved_once_and_filter_edit_adds_without_duplicates(
        self, make_mailing, make_client, now
    ):
        vip = clients(make_client, 3, tag="vip")
        retail = clients(make_client, 2, tag="retail")
        mailing = make_mailing(filter_tags=["vip"])
        scheduling.tick(now)
        scheduling.tick(now)  # a second tick (or a second worker) adds nothing
        assert set(mailing.messages.values_list("client_id", flat=True)) == {c.id for c in vip}

        mailing.refresh_from_db()
        mailing.filter_tags = ["retail"]
        mailing.save()
        assert mailing.audience_version == 2
        scheduling.tick(now)
        by_client = dict(mailing.messages.values_list("client_id", "status"))
        assert len(by_client) == 5 and Message.objects.filter(mailing=mailing).count() == 5
        assert {by_client[c.id] for c in retail} == {MessageStatus.PENDING}
        # Those who no longer match are not sent.
        assert {by_client[c.id] for c in vip} == {MessageStatus.CANCELLED}

    def test_running_mailing_with_nothing_left_finishes(self, make_mailing, make_client, now, make_deliverer):
        make_client()
        mailing = make_mailing()
        drain(make_deliverer())
        mailing.refresh_from_db()
        assert mailing.state == MailingState.FINISHED and mailing.finished_at is not None


class TestWindow:
    W = (clock(22), clock(2))  # crosses midnight

    @pytest.mark.parametrize(
        "local,inside",
        [
            (clock(21, 59), False),
            (clock(22), True),
            (clock(23, 59), True),
            (clock(0, 30), True),
            (clock(2), False),
            (clock(12), False),
        ],
    )
    def test_in_window_across_midnight(self, local, inside):
        assert windows.in_window(local, *self.W) is inside

    def test_opens_at_next_local_start(self):
        now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # 19:00 in Vladivostok (UTC+10)
        assert windows.opens_at(now, "Asia/Vladivostok", [self.W]) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
        # 05:00 in New York (UTC-4 in June): inside? no (02:00 end) -> 22:00 local = 02:00 UTC next day
        assert windows.opens_at(now, "America/New_York", [self.W]) == datetime(2026, 6, 2, 2, 0, tzinfo=UTC)
        # Already inside: now.
        late = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 23:00 Vladivostok
        assert windows.opens_at(late, "Asia/Vladivostok", [self.W]) == late

    def test_dst_spring_forward_gap_never_opens_early(self):
        # New York 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 doesn't exist that day.
        now = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
        opens = windows.opens_at(now, "America/New_York", [(clock(2, 30), clock(6))])
        local = opens.astimezone(windows.zone("America/New_York"))
        assert windows.in_window(local.time().replace(tzinfo=None), clock(2, 30), clock(6))
        assert opens >= datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # not before 03:00 EDT

    def test_dst_fall_back_uses_first_occurrence(self):
        # New York 2026-11-01: 01:30 happens twice; the window opens at the first (EDT, UTC-4).
        now = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
        opens = windows.opens_at(now, "America/New_York", [(clock(1, 30), clock(3))])
        assert opens == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)

    @pytest.mark.django_db
    def test_clients_wait_for_their_local_window(self, make_mailing, make_client, make_deliverer, provider):
        # 09:00 UTC = 19:00 Vladivostok (outside 22-02), 09:00 London BST... use explicit zones.
        now = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 23:00 Vladivostok (inside), 09:00 New York (outside)
        vlad = make_client(timezone="Asia/Vladivostok")
        ny = make_client(timezone="America/New_York")
        mailing = make_mailing(
            start_at=now, end_at=now + timedelta(days=2), window_start=clock(22), window_end=clock(2)
        )
        deliverer = make_deliverer()
        drain(deliverer, now)
        assert Message.objects.get(client=vlad).status == MessageStatus.SENT
        waiting = Message.objects.get(client=ny)
        assert waiting.status == MessageStatus.PENDING
        assert waiting.next_attempt_at == datetime(2026, 6, 2, 2, 0, tzinfo=UTC)  # 22:00 EDT
        drain(deliverer, datetime(2026, 6, 2, 1, 59, tzinfo=UTC))
        assert Message.objects.get(client=ny).status == MessageStatus.PENDING
        mailing.refresh_from_db()
        assert mailing.state == MailingState.RUNNING  # a message waiting for its window keeps it open
        drain(deliverer, datetime(2026, 6, 2, 2, 0, tzinfo=UTC))
        assert Message.objects.get(client=ny).status == MessageStatus.SENT
        assert set(provider.record.accepted.values()) == {1} and len(provider.record.accepted) == 2
        mailing.refresh_from_db()
        assert mailing.state == MailingState.FINISHED

    @pytest.mark.django_db
    def test_window_that_never_opens_before_end_expires(self, make_mailing, make_client, make_deliverer):
        now = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 09:00 in New York
        make_client(timezone="America/New_York")
        mailing = make_mailing(
            start_at=now, end_at=now + timedelta(hours=3), window_start=clock(22), window_end=clock(2)
        )
        drain(make_deliverer(), now)
        assert statuses(mailing) == {"expired": 1}


@pytest.mark.django_db(transaction=True)
def test_exactly_once_with_two_workers_and_a_misbehaving_gateway(make_mailing, make_client, provider):
    """20% of requests fail (5xx, garbage 200s, dropped connections); two worker processes race."""
    provider.behaviour.error_rate = 0.10
    provider.behaviour.garbage_rate = 0.05
    provider.behaviour.drop_rate = 0.05
    for i in range(300):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    workers = [start_worker(provider.url, f"w{i}", seconds=60, batch_size=40) for i in range(2)]
    for worker in workers:
        worker.join(90)
    assert statuses(mailing) == {"sent": 300}
    # Each message reached the gateway's "accepted" exactly once, although many needed retries.
    assert len(provider.record.accepted) == 300 and set(provider.record.accepted.values()) == {1}
    assert (
        provider.record.outcomes["error"]
        + provider.record.outcomes["garbage"]
        + provider.record.outcomes["dropped"]
        > 20
    )
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None  # two workers' counts add up
    owners = set(Message.objects.values_list("attempts", flat=True))
    assert max(owners) > 1  # retries happened
    mailing.refresh_from_db()
    assert mailing.state == MailingState.FINISHED


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_batch_loses_nothing(make_mailing, make_client, make_deliverer, provider):
    provider.behaviour.latency = 0.5
    for i in range(60):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    worker = start_worker(provider.url, "doomed", seconds=30, batch_size=20, concurrency=5)
    deadline = time.monotonic() + 10
    while not Message.objects.filter(locked_by__startswith="doomed").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # requests in flight
    kill(worker)
    stranded = set(Message.objects.filter(locked_by__startswith="doomed").values_list("id", flat=True))
    assert stranded, "the worker was killed while holding claimed messages"

    provider.behaviour.latency = 0.0
    survivor = make_deliverer("survivor")
    drain(survivor)  # the lease hasn't run out: the stranded messages wait
    assert set(Message.objects.filter(status=MessageStatus.PENDING).values_list("id", flat=True)) == stranded
    drain(survivor, timezone.now() + timedelta(seconds=61))  # after the lease
    assert statuses(mailing) == {"sent": 60}
    twice = {msg_id for msg_id, n in provider.record.accepted.items() if n > 1}
    # Only requests whose answer never came can reach the gateway twice, and with the same id.
    assert twice <= stranded
    assert len(provider.record.accepted) == 60


@pytest.mark.django_db
def test_nothing_is_sent_after_the_end_with_a_slow_gateway(
    make_mailing, make_client, make_deliverer, provider
):
    provider.behaviour.latency = 0.8
    for i in range(12):
        make_client(f"7900{i:07d}")
    start = timezone.now()
    mailing = make_mailing(start_at=start - timedelta(seconds=1), end_at=start + timedelta(seconds=1.5))
    deliverer = make_deliverer(concurrency=4, batch_size=12)
    while timezone.now() < mailing.end_at + timedelta(seconds=1):
        scheduling.tick()
        deliverer.run_batch()
        time.sleep(0.05)
    scheduling.tick()
    counts = statuses(mailing)
    assert set(counts) <= {"sent", "expired"} and counts.get("expired", 0) >= 4
    assert counts.get("sent", 0) >= 4  # the first requests made it
    assert not Message.objects.filter(sent_at__gt=mailing.end_at).exists()
    # No request reached the gateway after the end.
    assert max(provider.record.times.values()) < mailing.end_at.timestamp()


@pytest.mark.django_db
def test_outage_of_ten_minutes_then_recovery(make_mailing, make_client, make_deliverer, provider):
    """Simulated clock: the gateway refuses connections for 10 minutes. The breaker keeps the
    workers from hammering it; when it comes back everything goes out, once."""
    for i in range(100):
        make_client(f"7900{i:07d}")
    now = timezone.now()
    mailing = make_mailing(start_at=now, end_at=now + timedelta(hours=2))
    deliverer = make_deliverer(retry_base=2.0, retry_max=300.0)
    provider.go_down(3600)
    time.sleep(0.1)
    attempts = 0
    for step in range(0, 600, 5):
        scheduling.tick(now + timedelta(seconds=step))
        deliverer.run_batch(now + timedelta(seconds=step))
        attempts = sum(Message.objects.values_list("attempts", flat=True))
    state = GatewayState.get()
    assert state.consecutive_failures >= 5 and "connect" in state.last_error
    # 120 rounds of up to 50 messages, but the breaker let only a few dozen requests through.
    assert 50 <= attempts <= 80, attempts
    assert statuses(mailing) == {"pending": 100}

    provider.behaviour.down_until = 0
    time.sleep(0.2)
    for step in range(600, 1200, 5):
        scheduling.tick(now + timedelta(seconds=step))
        deliverer.run_batch(now + timedelta(seconds=step))
    assert statuses(mailing) == {"sent": 100}
    assert set(provider.record.accepted.values()) == {1}
    assert GatewayState.get().consecutive_failures == 0


@pytest.mark.django_db
def test_pause_resume_cancel(make_mailing, make_client, make_deliverer, provider, now):
    for i in range(10):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    scheduling.tick()
    mailing.refresh_from_db()
    mailing.pause()
    deliverer = make_deliverer()
    drain(deliverer)
    assert statuses(mailing) == {"pending": 10} and not provider.record.accepted
    mailing.resume()
    drain(deliverer)
    assert statuses(mailing) == {"sent": 10}

    other = make_mailing(text="second")
    scheduling.tick()
    other.refresh_from_db()
    other.cancel()
    drain(deliverer)
    assert statuses(other) == {"cancelled": 10}
    assert len(provider.record.accepted) == 10


@pytest.mark.django_db(transaction=True)
def test_rate_limit_holds_across_two_workers(make_mailing, make_client, provider, monkeypatch):
    """Two worker processes take send slots from one timeline: their runs of slots never overlap,
    so together they send at most `rate` a second, and no message reaches the gateway before its
    slot. Checked on the slots the workers took, not by counting arrivals per second: a request
    that leaves late arrives close to the next one, which says nothing about the rule."""
    rate, n = 40.0, 60
    for i in range(n):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    GatewayState.get()
    taken = multiprocessing.get_context("fork").SimpleQueue()
    reserve = GatewayState.reserve

    def recording_reserve(count: int, rate: float) -> float:
        # Under the row lock reserve takes too: the next slot on the row after it ends this run.
        with transaction.atomic():
            GatewayState.objects.select_for_update().get(pk=1)
            wait = reserve(count, rate)
            end = GatewayState.objects.get(pk=1).rate_next_at
        taken.put((end - timedelta(seconds=count / rate), count, os.getpid()))
        return wait

    monkeypatch.setattr(GatewayState, "reserve", staticmethod(recording_reserve))  # the workers fork it
    # Rounds of 10 messages (a quarter second of slots): both workers get some.
    workers = [start_worker(provider.url, f"r{i}", rate_limit=rate, batch_size=10) for i in range(2)]
    for worker in workers:
        worker.join(40)
    assert statuses(mailing) == {"sent": n}
    runs = []
    while not taken.empty():
        runs.append(taken.get())
    runs.sort()
    assert {pid for _, _, pid in runs} == {w.pid for w in workers}, "both workers took slots"
    assert sum(count for _, count, _ in runs) == n  # one slot per message (nothing was retried)
    for (start, count, _), (next_start, _, _) in itertools.pairwise(runs):
        assert next_start >= start + timedelta(seconds=count / rate), "two runs of slots overlap"
    slots = sorted(
        (start + timedelta(seconds=i / rate)).timestamp() for start, count, _ in runs for i in range(count)
    )
    arrivals = sorted(provider.record.times.values())
    # The k-th message to arrive came no sooner than the k-th slot. (A slot's wall time becomes a
    # monotonic one for sending; while NTP slews the wall clock, the two drift by up to 500 ppm.)
    early = [(a, s) for a, s in zip(arrivals, slots, strict=True) if a < s - 0.002]
    assert not early, early[:5]


@pytest.mark.django_db
def test_refused_token_stops_sending_until_it_changes(
    make_mailing, make_client, make_deliverer, provider, settings
):
    for i in range(5):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    bad = make_deliverer("bad", token="wrong")
    scheduling.tick()
    assert bad.run_batch() == 5
    state = GatewayState.get()
    assert "auth" in state.auth_error and state.auth_failed_token == bad.token_hash
    assert statuses(mailing) == {"pending": 5}
    assert set(Message.objects.values_list("attempts", flat=True)) == {0}  # not the messages' fault
    assert bad.run_batch() == 0  # stopped: no more requests with a refused token
    assert provider.record.outcomes["unauthorized"] == 5

    drain(make_deliverer("fixed"))  # a new token (e.g. after a restart with the right one)
    assert statuses(mailing) == {"sent": 5}
    assert GatewayState.get().auth_error == ""


@pytest.mark.django_db
def test_permanent_error_fails_at_once(make_mailing, make_client, make_deliverer, provider):
    make_client("79000000001")
    mailing = make_mailing(text="x")
    original = provider.answer
    provider.answer = lambda *a: (400, b'{"code": 400, "message": "invalid request"}', {})
    drain(make_deliverer())
    provider.answer = original
    message = Message.objects.get(mailing=mailing)
    assert message.status == MessageStatus.FAILED and message.attempts == 1
    assert "HTTP 400" in message.last_error


@pytest.mark.django_db
def test_each_request_is_the_contracts_json_post(make_mailing, make_client, make_deliverer, provider):
    texts = ['Скидка 10% «до пятницы»: "код" \\ 🙂', "Second\ntext"]  # quotes, escapes, non-ASCII
    phones = ["79000000001", "79000000002"]
    for phone in phones:
        make_client(phone)
    mailings = [make_mailing(text=text) for text in texts]
    seen = []
    original = provider.answer

    def answer(method, path, headers, body):
        seen.append((path, headers.get("content-type"), headers.get("authorization"), json.loads(body)))
        return original(method, path, headers, body)

    provider.answer = answer
    drain(make_deliverer())
    provider.answer = original
    expected = {
        (f"/v1/send/{m.id}", "application/json", f"Bearer {TOKEN}", m.id, int(m.client.phone), m.mailing.text)
        for m in Message.objects.filter(mailing__in=mailings).select_related("client", "mailing")
    }
    assert len(expected) == 4
    got = {(path, kind, auth, body["id"], body["phone"], body["text"]) for path, kind, auth, body in seen}
    assert got == expected and all(len(body) == 3 and type(body["phone"]) is int for *_, body in seen)


@pytest.mark.django_db
def test_429_honours_retry_after(make_mailing, make_client, make_deliverer, provider):
    make_client("79000000001")
    mailing = make_mailing()
    provider.behaviour.throttle_rate = 1.0
    now = timezone.now()
    scheduling.tick(now)
    make_deliverer().run_batch(now)
    message = Message.objects.get(mailing=mailing)
    assert message.status == MessageStatus.PENDING and message.attempts == 1
    assert message.next_attempt_at >= now + timedelta(seconds=1)  # Retry-After: 1, base 10 ms


@pytest.mark.django_db
def test_every_log_line_about_a_message_carries_its_ids(
    make_mailing, make_client, make_deliverer, provider, caplog
):
    client = make_client("79000000001")
    mailing = make_mailing()
    provider.behaviour.error_rate = 1.0
    caplog.set_level(logging.INFO, logger="mailer")
    deliverer = make_deliverer(max_attempts=2)
    drain(deliverer)
    message = Message.objects.get(mailing=mailing)
    lines = [r for r in caplog.records if getattr(r, "message_id", None) == message.id]
    assert len(lines) == 2  # the first attempt (retry) and the second (failed for good)
    for record in lines:
        assert (record.mailing_id, record.client_id) == (mailing.id, client.id)
        text = record.getMessage()
        assert f"message_id={message.id}" in text and f"client_id={client.id}" in text
    assert "-> failed" in lines[-1].getMessage()


def test_no_two_messages_for_one_pair_even_when_resolving_twice(db, make_mailing, make_client, now):
    clients(make_client, 4)
    mailing = make_mailing()
    scheduling.start_due(now)
    mailing.refresh_from_db()
    Mailing.objects.filter(pk=mailing.pk).update(resolved_version=0, resolve_lease_until=None)
    scheduling.resolve_audience(mailing, now)
    Mailing.objects.filter(pk=mailing.pk).update(resolved_version=0, resolve_lease_until=None)
    mailing.refresh_from_db()
    scheduling.resolve_audience(mailing, now)
    pairs = Counter(Message.objects.values_list("mailing_id", "client_id"))
    assert len(pairs) == 4 and set(pairs.values()) == {1}


@pytest.mark.django_db
def test_cancel_while_in_flight_keeps_what_really_happened(
    make_mailing, make_client, make_deliverer, provider
):
    delivered, refused, waiting = (make_client(f"7900000000{i}") for i in range(3))
    mailing = make_mailing()
    scheduling.tick()
    ids = dict(Message.objects.values_list("client_id", "id"))
    original = provider.answer

    def answer(method, path, headers, body):
        if path.endswith(f"/{ids[refused.id]}"):
            return 503, b"busy", {}
        return original(method, path, headers, body)

    provider.answer = answer
    deliverer = make_deliverer(batch_size=2)
    send = deliverer.submit

    def cancel_then_send(batch, stopping):  # the operator clicks "cancel" while the round is claimed
        Mailing.objects.get(pk=mailing.pk).cancel()
        return send(batch, stopping)

    deliverer.submit = cancel_then_send
    assert deliverer.run_batch() == 2
    deliverer.submit = send
    status = dict(Message.objects.values_list("client_id", "status"))
    assert status[delivered.id] == MessageStatus.SENT  # the gateway accepted it: recorded as sent
    assert status[waiting.id] == MessageStatus.CANCELLED  # never claimed: cancelled at once
    assert status[refused.id] == MessageStatus.PENDING  # came back for a retry...
    scheduling.tick()
    assert Message.objects.get(client=refused).status == MessageStatus.CANCELLED  # ...and is not retried
    assert set(provider.record.accepted) == {ids[delivered.id]}


@pytest.mark.django_db
def test_sent_at_is_never_before_the_real_answer(make_mailing, make_client, make_deliverer, provider):
    provider.behaviour.jitter = 0.05
    for i in range(40):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    scheduling.tick()
    before = timezone.now()
    make_deliverer(concurrency=4, batch_size=40).run_batch()
    after = timezone.now()
    sent = list(Message.objects.filter(mailing=mailing).values_list("id", "sent_at"))
    assert len(sent) == 40
    for msg_id, sent_at in sent:
        answered = datetime.fromtimestamp(provider.record.times[msg_id], UTC)  # when the gateway got it
        assert answered <= sent_at <= after, (msg_id, answered, sent_at)
    assert min(s for _, s in sent) >= before


def test_a_claim_reads_about_what_it_takes_however_many_are_pending(make_mailing, make_deliverer):
    """A claim takes a running mailing's first due messages from its queue (message_queue_idx, in
    order), so it reads about as many rows as it takes, even when the database's statistics know
    nothing of the mailing yet (a new mailing always): it used to sort every pending message of
    the mailing at each claim, which made the engine slower the larger the audience."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.engine.conftest import seed_clients

    seed_clients(3000)
    for cancelled in (True, False):
        mailing = make_mailing()
        scheduling.tick()  # it starts, with a first chunk
        mailing.refresh_from_db()
        scheduling.resolve_audience(mailing, timezone.now())  # and the rest
        if cancelled:  # an earlier mailing, all the statistics know of
            mailing.cancel()
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute("ANALYZE mailer_message")
    assert Message.objects.filter(mailing=mailing, status=MessageStatus.PENDING).count() == 3000
    with CaptureQueriesContext(connection) as queries:
        _, claimed = make_deliverer().claim(10, timezone.now())
    assert len(claimed) == 10
    [select] = [q["sql"] for q in queries if q["sql"].startswith('SELECT "mailer_message"."next_attempt_at"')]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {select}")
            [[plan]] = cursor.fetchone()

            def rows(node: dict) -> list[int]:
                return [node["Actual Rows"]] + [n for child in node.get("Plans", []) for n in rows(child)]

            assert max(rows(plan["Plan"])) <= 20, plan  # not 3,000
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {select}")
            plan = " / ".join(row[-1] for row in cursor.fetchall())
            assert "message_queue_idx" in plan and "TEMP B-TREE" not in plan, plan
