"""The crash window (issue 27): what a SIGKILLed worker can make the gateway see twice is bounded
by what it had in flight at that moment, whatever the moment. Real `run_worker` processes, the
real stand-in, duplicates counted there; on both databases (CI runs the suite on each)."""

from __future__ import annotations

import random
import time

import pytest

from engine.sending import OPEN_FACTOR
from mailer.models import (
    Mailing,
    MailingCounts,
    MailingState,
    Message,
    MessageStatus,
    WorkerHeartbeat,
)
from tests.engine.conftest import run_worker, seed_clients, stop_group, wait_for

CLIENTS = 8000
SENDERS, CONCURRENCY = 2, 16
ENV = {
    "MAILER_SENDERS": SENDERS,
    "MAILER_CONCURRENCY": CONCURRENCY,
    "MAILER_LEASE_SECONDS": 8,  # a killed worker's rows come back soon
    "MAILER_REQUEST_TIMEOUT": 2,
}
# What one killed worker (host) can have in flight: each sender's requests sent whose outcome is not
# written yet (Gateway.open_limit).
BOUND = SENDERS * OPEN_FACTOR * CONCURRENCY


def _restart(provider_url: str, log):
    """A new worker in the killed one's place, once its senders beat."""
    process = run_worker(provider_url, log, **ENV)
    started = lambda: WorkerHeartbeat.objects.filter(owner__contains=f":{process.pid}:").count() == SENDERS  # noqa: E731
    assert wait_for(started, 30), "the new worker's senders did not start"
    return process


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("hosts", [1, 2])
def test_a_killed_worker_repeats_no_more_than_it_had_in_flight(hosts, make_mailing, provider, tmp_path):
    provider.behaviour.latency, provider.behaviour.jitter = 0.02, 0.03
    seed_clients(CLIENTS)
    rng = random.Random()
    log = open(tmp_path / "workers.log", "w")
    survivor = run_worker(provider.url, log, **ENV) if hosts == 2 else None
    doomed = run_worker(provider.url, log, **ENV)
    kills = 0
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == SENDERS * hosts, 30)
        mailing = make_mailing()
        assert wait_for(lambda: provider.record.accepted, 30)
        while kills < 5 and len(provider.record.accepted) < CLIENTS * 0.8:
            time.sleep(rng.uniform(0.1, 1.5))  # any moment: mid-round, mid-write, between rounds
            stop_group(doomed)  # SIGKILL to the whole process group
            kills += 1
            doomed = _restart(provider.url, log)
        assert kills >= 3, "the mailing was over before the kills"
        assert wait_for(lambda: Mailing.objects.get(pk=mailing.pk).state == MailingState.FINISHED, 120)
    finally:
        stop_group(doomed)
        if survivor is not None:
            stop_group(survivor)
        log.close()
    assert Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == CLIENTS
    assert len(provider.record.accepted) == CLIENTS
    repeated = sum(n - 1 for n in provider.record.accepted.values())
    assert repeated <= kills * BOUND, f"{repeated} repeats after {kills} kills (bound {BOUND} each)"
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None
