"""The worker: sender processes, stopping on SIGTERM, more than one host (real processes, the real
stand-in of the gateway, deliveries counted there)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django import db
from django.db import DatabaseError, OperationalError
from django.utils import timezone

from engine import scheduling, worker
from engine.delivery import Deliverer
from engine.sending import OPEN_FACTOR, ErrorKind, Gateway, Outbound
from mailer import tasks
from mailer.models import (
    Mailing,
    MailingCounts,
    MailingState,
    Message,
    MessageStatus,
    WorkerHeartbeat,
)
from tests.engine.conftest import TOKEN, run_worker, seed_clients, stop_group, wait_for

pytestmark = pytest.mark.django_db


class StopWhen(worker.Stop):
    def __init__(self, condition, seconds: float) -> None:
        super().__init__()
        self.condition = condition
        self.deadline = time.monotonic() + seconds

    def __call__(self) -> bool:
        try:
            asyncio.get_running_loop()  # asked by the gateway mid-round: no database here
        except RuntimeError:
            self.requested = self.requested or self.condition() or time.monotonic() > self.deadline
        return self.requested


def test_a_sender_delivers_beats_and_leaves_no_trace_when_stopped(make_mailing, make_client, make_deliverer):
    for i in range(30):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    beating = []

    def all_sent() -> bool:
        beating.append(WorkerHeartbeat.objects.filter(owner="h:1:ab/0").exists())
        return Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == 30

    handled = worker.run_sender("h:1:ab/0", 0, StopWhen(all_sent, 20), make_deliverer())
    assert handled == 30 and Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == 30
    assert any(beating) and not WorkerHeartbeat.objects.exists()


def test_housekeeping_forgets_senders_gone_for_an_hour():
    now = timezone.now()
    WorkerHeartbeat.objects.create(owner="gone/0", beat_at=now - timedelta(hours=2))
    WorkerHeartbeat.objects.create(owner="alive/0", beat_at=now)
    assert tasks.housekeeping() == "1 gone senders forgotten, 0 old messages deleted"
    assert list(WorkerHeartbeat.objects.values_list("owner", flat=True)) == ["alive/0"]


def test_a_stopping_gateway_sends_nothing_new_and_cuts_requests_in_flight_short(provider, monkeypatch):
    """In flight when the stop comes: given Gateway.STOP_DRAIN, then cut short (may have been
    delivered); not started yet: not sent at all."""
    provider.behaviour.latency = 30.0
    monkeypatch.setattr(Gateway, "STOP_DRAIN", 0.5)
    gateway = Gateway(provider.url, TOKEN, concurrency=2)
    stop_at = time.monotonic() + 0.3
    items = [Outbound(i, "79001234567", "hi", 60.0, time.monotonic() + 60) for i in range(1, 5)]

    async def go():
        try:
            return await gateway.send_many(items, stopping=lambda: time.monotonic() > stop_at)
        finally:
            await gateway.close()

    started = time.monotonic()
    results = asyncio.run(go())
    assert time.monotonic() - started < 3
    assert [r.error.kind for r in results] == [ErrorKind.STOPPED] * 4
    assert [r.error.delivered_maybe for r in results] == [True, True, False, False]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_worker_sends_a_mailing_within_seconds_of_its_start(make_client, provider, tmp_path):
    for i in range(50):
        make_client(f"7900{i:07d}")
    with open(tmp_path / "worker.log", "w") as log:
        process = run_worker(provider.url, log)
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == 2, 30), "the senders did not start"
        start_at = timezone.now() + timedelta(seconds=2)
        mailing = Mailing.objects.create(
            text="Hi", start_at=start_at, end_at=start_at + timedelta(minutes=10)
        )
        assert wait_for(lambda: Mailing.objects.get(pk=mailing.pk).state == MailingState.FINISHED, 30)
        first = Message.objects.filter(mailing=mailing).order_by("sent_at").first().sent_at
        assert start_at <= first < start_at + timedelta(seconds=3)
        assert Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == 50
        assert set(provider.record.accepted.values()) == {1}
    finally:
        stop_group(process)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_senders_yield_the_cpu_to_the_web(provider, tmp_path):
    """MAILER_SENDER_NICE: the senders, and the worker's session (a process manager's, no
    terminal), which Linux weighs against the web's before their processes."""
    with open(tmp_path / "worker.log", "w") as log:
        process = run_worker(provider.url, log, MAILER_SENDER_NICE=7)
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == 2, 30), "the senders did not start"
        niceness = [
            int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
            for pid in [process.pid, *worker._descendants(process.pid)]
        ]
        assert niceness[0] == 0 and niceness.count(7) == 2  # the supervisor and the cluster as they were
        assert Path(f"/proc/{process.pid}/autogroup").read_text().endswith(" nice 7\n")
    finally:
        stop_group(process)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_mid_mailing_is_out_within_seconds_and_a_new_worker_takes_over_at_once(
    make_mailing, make_client, provider, tmp_path
):
    """A rolling restart: the old worker finishes the round in flight, starts no new one, leaves
    no message leased, and is out well within Docker's 10 s; the new one sends at once."""
    provider.behaviour.latency = 0.5
    seed_clients(3000)
    log = open(tmp_path / "worker.log", "w")
    old = run_worker(provider.url, log)
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == 2, 30)
        mailing = make_mailing()
        assert wait_for(lambda: len(provider.record.accepted) >= 300, 30)
        asked = time.monotonic()
        old.send_signal(signal.SIGTERM)
        old.wait(15)
        took = time.monotonic() - asked
        assert took < 10, f"the old worker took {took:.1f}s to stop"
        assert old.returncode == 0
        assert not Message.objects.exclude(locked_by="").exists(), "a stopped worker left messages leased"
        assert not WorkerHeartbeat.objects.exists()
        done_by_old = len(provider.record.accepted)
        assert done_by_old < 3000, "the mailing was over before the restart"

        new = run_worker(provider.url, log)
        started = time.time()
        try:
            assert wait_for(lambda: len(provider.record.accepted) > done_by_old, 15)
            first_new = min(t for t in provider.record.times.values() if t >= started)
            assert first_new - started < 8  # the process start, then at once: nothing to wait for
            assert wait_for(lambda: Mailing.objects.get(pk=mailing.pk).state == MailingState.FINISHED, 60)
        finally:
            stop_group(new, signal.SIGTERM)
        assert Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == 3000
        assert len(provider.record.accepted) == 3000 and set(provider.record.accepted.values()) == {1}
        assert MailingCounts.reconcile(mailing.pk, repair=False) is None
    finally:
        stop_group(old)
        log.close()


def _gone(pids: list[int]) -> bool:
    """None of these processes is left (a zombie not yet reaped by init counts as gone)."""
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return False
    return True


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_to_the_whole_group_as_honcho_sends_it_stops_every_process_within_seconds(provider, tmp_path):
    """honcho (bin/demo) and a terminal's Ctrl-C signal the worker's whole process group, and
    honcho SIGKILLs what is left after 5 s: the django-q2 cluster must not get the signal itself."""
    with open(tmp_path / "worker.log", "w") as log:
        process = run_worker(provider.url, log)
    try:
        # Two senders, the cluster's main process, its sentinel, pusher, worker and monitor.
        assert wait_for(lambda: len(worker._descendants(process.pid)) >= 7, 30)
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == 2, 30)
        time.sleep(1)  # the cluster running, not starting
        processes = [process.pid, *worker._descendants(process.pid)]
        asked = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
        took = time.monotonic() - asked
        assert took < 4, f"the worker took {took:.1f}s to stop"
        assert process.returncode == 0
        assert wait_for(lambda: _gone(processes), 2), "a process of the worker was left running"
        assert not WorkerHeartbeat.objects.exists()
    finally:
        stop_group(process)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_leaves_no_cluster_behind(provider, tmp_path):
    """The cluster has a process group of its own, so a SIGKILL to the worker's group misses it:
    it is told by the kernel that its supervisor died, and stops."""
    with open(tmp_path / "worker.log", "w") as log:
        process = run_worker(provider.url, log)
    try:
        assert wait_for(lambda: len(worker._descendants(process.pid)) >= 7, 30)
        time.sleep(1)
        processes = worker._descendants(process.pid)
        stop_group(process, signal.SIGKILL)
        assert wait_for(lambda: _gone(processes), 5), "the cluster outlived its worker"
    finally:
        stop_group(process)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_hosts_one_killed_mid_mailing_the_other_carries_on(make_mailing, make_client, provider, tmp_path):
    """Two workers as two hosts, each with its own senders. One is SIGKILLed mid-mailing: the
    other goes on sending at once; the killed one's claimed messages are sent after their lease,
    and only requests that were in flight at the kill can reach the gateway twice (same id)."""
    provider.behaviour.latency = 0.3
    seed_clients(3000)
    env = {"MAILER_LEASE_SECONDS": 12, "MAILER_REQUEST_TIMEOUT": 5}
    log = open(tmp_path / "workers.log", "w")
    doomed = run_worker(provider.url, log, **env)
    survivor = run_worker(provider.url, log, **env)
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == 4, 30), "both hosts' senders beat"
        mailing = make_mailing()
        assert wait_for(lambda: len(provider.record.accepted) >= 500, 30)
        stop_group(doomed)
        killed_at = time.time()
        stranded = set(
            Message.objects.filter(locked_by__contains=f":{doomed.pid}:").values_list("id", flat=True)
        )
        assert wait_for(lambda: Mailing.objects.get(pk=mailing.pk).state == MailingState.FINISHED, 90)
        assert any(killed_at < t < killed_at + 30 for t in provider.record.times.values())
    finally:
        stop_group(doomed)
        stop_group(survivor, signal.SIGTERM)
        log.close()
    assert Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == 3000
    assert len(provider.record.accepted) == 3000
    twice = {msg_id for msg_id, n in provider.record.accepted.items() if n > 1}
    assert twice <= stranded
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None
    owners = set(WorkerHeartbeat.objects.values_list("owner", flat=True))
    assert not any(f":{survivor.pid}:" in owner for owner in owners)  # it left cleanly


def test_answers_are_written_as_they_come_not_a_round_at_a_time(
    make_mailing, make_client, make_deliverer, provider
):
    """Ten messages two at a time, 0.2 s each: the first answers are in the database while the
    rest of the round is still out, and what the gateway answered is never far ahead of it."""
    provider.behaviour.latency = 0.2
    for i in range(10):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    deliverer = make_deliverer(batch_size=10, concurrency=2)
    scheduling.tick()
    sent = Message.objects.filter(mailing=mailing, status=MessageStatus.SENT)
    seen = []
    assert deliverer.run_batch(overlap=True) == 10
    while deliverer.busy:
        deliverer.run_batch(overlap=True)
        seen.append((len(provider.record.accepted), sent.count()))
    assert any(0 < written < 10 for _, written in seen), seen  # written while the round is out
    assert all(answered - written <= deliverer.open_limit for answered, written in seen), seen
    assert sent.count() == 10
    assert wait_for(lambda: deliverer.open == 0, 2)  # the places are given back on the gateway's thread


@pytest.mark.django_db(transaction=True)
def test_a_senders_writer_writes_answers_while_the_sender_is_busy_elsewhere(
    make_client, make_deliverer, provider
):
    """A sender's writer thread (Deliverer.start_writer): what the gateway answered is written
    while the sender itself does something else (a claim, an audience slice), and nothing is
    written twice when it stops."""
    provider.behaviour.latency = 0.05
    for i in range(40):
        make_client(f"7900{i:07d}")
    now = timezone.now()
    mailing = Mailing.objects.create(text="Hi", start_at=now, end_at=now + timedelta(hours=1))
    deliverer = make_deliverer(batch_size=40, concurrency=4)
    deliverer.start_writer()
    scheduling.tick()
    sent = Message.objects.filter(mailing=mailing, status=MessageStatus.SENT)
    assert deliverer.run_batch(overlap=True) == 40
    # The sender looks away: no call into the deliverer, yet the answers go in as they come.
    assert wait_for(lambda: sent.count() == 40, 10), sent.count()
    assert not deliverer.busy and wait_for(lambda: deliverer.open == 0, 2)
    deliverer.stop_writer()
    assert not deliverer.writing and set(provider.record.accepted.values()) == {1}
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None


def test_while_answers_cannot_be_written_the_gateway_gets_no_more_than_the_open_limit(
    make_mailing, make_client, make_deliverer, provider, monkeypatch
):
    """The database takes no outcome: the gateway sends `open_limit` messages and then waits, so
    that a kill now could repeat no more; once it is back, the rest goes, once each."""
    for i in range(50):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    deliverer = make_deliverer(batch_size=50, concurrency=4)
    scheduling.tick()
    record = Deliverer.record

    def refused(self, part):
        raise OperationalError("the database is away")

    monkeypatch.setattr(Deliverer, "record", refused)
    monkeypatch.setattr(db, "close_old_connections", lambda: None)  # the test's own connection stays
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        with contextlib.suppress(DatabaseError):
            deliverer.run_batch(overlap=True)
        time.sleep(0.05)
    assert len(provider.record.accepted) == deliverer.open_limit == OPEN_FACTOR * 4
    assert deliverer.open == deliverer.open_limit  # answered, not written
    monkeypatch.setattr(Deliverer, "record", record)
    while deliverer.busy or deliverer.run_batch(overlap=True):
        deliverer.run_batch(overlap=True)
    assert Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == 50
    assert set(provider.record.accepted.values()) == {1} and len(provider.record.accepted) == 50


def test_what_could_not_go_out_in_the_first_half_of_its_lease_is_released_unsent(
    make_mailing, make_client, make_deliverer, provider, monkeypatch
):
    """Messages that wait for open places longer than the first half of their lease (less the
    request's timeout) are not sent by that round: an answer then could not be sure of time to be
    written before another worker may claim them. They go back to the queue, unattempted."""
    for i in range(50):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    # Sent at most 3 * 0.5 - 1 = 0.5 s after the claim.
    deliverer = make_deliverer(batch_size=50, concurrency=4, lease=timedelta(seconds=3), request_timeout=1.0)
    scheduling.tick()
    record = Deliverer.record

    def refused(self, part):
        raise OperationalError("the database is away")

    monkeypatch.setattr(Deliverer, "record", refused)
    monkeypatch.setattr(db, "close_old_connections", lambda: None)
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        with contextlib.suppress(DatabaseError):
            deliverer.run_batch(overlap=True)
        time.sleep(0.05)
    assert len(provider.record.accepted) == deliverer.open_limit and not deliverer.out  # all answered
    monkeypatch.setattr(Deliverer, "record", record)
    deliverer.flush()
    messages = Message.objects.filter(mailing=mailing)
    assert messages.filter(status=MessageStatus.SENT).count() == deliverer.open_limit
    unsent = messages.filter(status=MessageStatus.PENDING)
    assert unsent.count() == 50 - deliverer.open_limit
    assert not unsent.filter(attempts__gt=0).exists() and not unsent.exclude(locked_by="").exists()
    while deliverer.busy or deliverer.run_batch(overlap=True):
        deliverer.run_batch(overlap=True)
    assert set(provider.record.accepted.values()) == {1} and len(provider.record.accepted) == 50


def test_an_answer_whose_row_another_worker_took_is_neither_written_nor_counted(
    make_mailing, make_client, make_deliverer, provider, monkeypatch, caplog
):
    """The lease ran out before the answers were written, and another worker claimed one of the
    rows: its outcome is that worker's; the rest are written and counted, once."""
    for i in range(5):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    deliverer = make_deliverer(batch_size=5)
    scheduling.tick()
    record = Deliverer.record
    taken = []

    def late(self, part):
        if not taken:
            taken.append(min(part.outcomes))
            Message.objects.filter(pk=taken[0]).update(locked_by="other/1")
        record(self, part)

    monkeypatch.setattr(Deliverer, "record", late)
    assert deliverer.run_batch() == 5
    messages = Message.objects.filter(mailing=mailing)
    assert messages.filter(status=MessageStatus.SENT).count() == 4
    assert messages.get(pk=taken[0]).status == MessageStatus.PENDING
    assert MailingCounts.objects.get(mailing=mailing).sent == 4
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None
    assert "1 outcomes not written, their lease ran out" in caplog.text
