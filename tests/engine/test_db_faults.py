"""The database goes away in the middle of a mailing: no message is sent twice, none is lost.

The faults are real. PostgreSQL: every backend of the worker is terminated, again and again
(as a restart or a failover does to it). SQLite: another connection holds the write lock for
longer than the worker's busy timeout. Deliveries are counted at the gateway's stand-in.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from mailer.models import (
    Mailing,
    MailingCounts,
    MailingState,
    Message,
    MessageStatus,
    WorkerHeartbeat,
)
from tests.engine.conftest import database_url, run_worker, seed_clients, stop_group, wait_for

CLIENTS = 10_000


@contextlib.contextmanager
def database_faults(every: float = 1.0):
    """Cut the worker off from the database every `every` seconds until the block ends."""
    done = threading.Event()
    cuts = []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), current_database()")
            mine, name = cursor.fetchone()
        db = connection.settings_dict

        def cut() -> None:
            with psycopg.connect(
                host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname="postgres"
            ) as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> %s AND pid <> pg_backend_pid()",
                    (name, mine),
                ).fetchone()[0]
            cuts.append(killed)
    else:
        path = connection.settings_dict["NAME"]

        def cut() -> None:
            # Longer than the worker's busy timeout (1 s, see the test): its writes fail.
            hold = sqlite3.connect(path, timeout=30, isolation_level=None)
            hold.execute("BEGIN IMMEDIATE")
            time.sleep(2.5)
            hold.execute("ROLLBACK")
            hold.close()
            cuts.append(1)

    def loop() -> None:
        while not done.wait(every):
            cut()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield cuts
    finally:
        done.set()
        thread.join(10)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_database_cut_again_and_again_mid_mailing_sends_each_message_exactly_once(provider, tmp_path):
    provider.behaviour.latency = 0.05
    provider.behaviour.error_rate = 0.05
    seed_clients(CLIENTS)
    url = database_url() + ("?timeout=1" if connection.vendor == "sqlite" else "")
    # A short lease: an outcome the worker dropped would be claimed and sent again within the test.
    env = {"DATABASE_URL": url, "MAILER_LEASE_SECONDS": 12, "MAILER_REQUEST_TIMEOUT": 5}
    log_path = tmp_path / "worker.log"
    log = open(log_path, "w")
    process = run_worker(provider.url, log, **env)
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == 2, 30)
        start_at = timezone.now() + timedelta(seconds=1)
        mailing = Mailing.objects.create(text="Hi", start_at=start_at, end_at=start_at + timedelta(hours=1))
        # From before the start: the audience resolution is cut as well as the sending.
        with database_faults() as cuts:
            wait_for(lambda: len(provider.record.accepted) >= CLIENTS, 40, every=0.5)
        finished = wait_for(
            lambda: Mailing.objects.get(pk=mailing.pk).state == MailingState.FINISHED, 90, 0.5
        )
    finally:
        stop_group(process)
        log.close()
    worker_log = log_path.read_text()
    assert len(cuts) >= 5 and "database unavailable" in worker_log, "the faults did not reach the worker"
    assert finished, worker_log[-3000:]
    assert Message.objects.filter(mailing=mailing).count() == CLIENTS  # none lost, none twice
    assert Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == CLIENTS
    # Every answered request was recorded: none was sent again.
    twice = [msg_id for msg_id, n in provider.record.accepted.items() if n > 1]
    # If not: whether their lease ran out before their answers were written, and the waits.
    why = [line for line in worker_log.splitlines() if "lease ran out" in line or "trying again in" in line]
    assert len(provider.record.accepted) == CLIENTS and not twice, (len(twice), why[-40:])
    # The counts were kept in the same transactions as the rows, faults and repeats included.
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None
