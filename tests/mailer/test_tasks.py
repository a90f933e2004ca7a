"""Sending pumps: slots, heartbeats, hand-over, and the real worker process end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from mailer import tasks
from mailer.models import Mailing, MailingState, Message, MessageStatus, WorkerHeartbeat
from tests.mailer.conftest import TOKEN

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_a_slot_has_one_owner_until_its_heartbeat_goes_stale():
    assert tasks.acquire_slot(0, "a")
    assert not tasks.acquire_slot(0, "b")
    assert tasks.beat(0, "a") and not tasks.beat(0, "b")
    WorkerHeartbeat.objects.filter(slot=0).update(beat_at=timezone.now() - timedelta(seconds=30))
    assert tasks.acquire_slot(0, "b")  # "a" stalled: its slot is taken over
    assert not tasks.beat(0, "a")  # ...and "a" learns it lost it
    tasks.release_slot(0, "b")
    assert tasks.acquire_slot(0, "c")


def test_ensure_pumps_enqueues_only_for_slots_without_a_live_pump(settings):
    settings.MAILER_SENDERS = 3
    tasks.acquire_slot(1, "alive")
    assert tasks.ensure_pumps() == [0, 2]
    assert OrmQ.objects.count() == 2


def test_busy_slot_makes_a_second_pump_exit_at_once():
    tasks.acquire_slot(0, "someone")
    started = time.monotonic()
    assert tasks.pump(0, seconds=5, handover=False) == "slot 0 is busy"
    assert time.monotonic() - started < 1


def test_pump_delivers_and_hands_over(make_mailing, make_client, provider):
    for i in range(20):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    assert tasks.pump(0, seconds=2) == "slot 0: 20 messages"
    assert Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == 20
    assert WorkerHeartbeat.objects.get(slot=0).owner == ""  # released for the next pump
    assert OrmQ.objects.count() == 1  # the next pump for the slot is queued


@pytest.mark.django_db(transaction=True)
def test_real_worker_sends_a_mailing_within_seconds_of_its_start(make_client, provider):
    """`manage.py run_worker` (django-q2 cluster + pumps) in its own process, on the test database."""
    for i in range(50):
        make_client(f"7900{i:07d}")
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MAILER_PROVIDER_URL": provider.url,
        "MAILER_PROVIDER_TOKEN": TOKEN,
        "MAILER_PUMP_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_worker"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while WorkerHeartbeat.objects.exclude(owner="").count() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        start_at = timezone.now() + timedelta(seconds=2)
        mailing = Mailing.objects.create(
            text="Hi", start_at=start_at, end_at=start_at + timedelta(minutes=10)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            mailing.refresh_from_db()
            if mailing.state == MailingState.FINISHED:
                break
            time.sleep(0.2)
        assert mailing.state == MailingState.FINISHED, "the worker did not finish the mailing"
        first = Message.objects.filter(mailing=mailing).order_by("sent_at").first().sent_at
        assert start_at <= first < start_at + timedelta(seconds=5)
        assert Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).count() == 50
        assert set(provider.record.accepted.values()) == {1}
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
