"""django-q2 tasks. Functions take ids, never model instances (their arguments are pickled).

Sending runs as "pumps": `pump(slot)` is one long-ish task per sending slot that, for
MAILER_PUMP_SECONDS, ticks the schedule about once a second (so a mailing starts within ~1 s of
its start time, where django-q2's scheduler only wakes every ~30 s) and delivers batches; then it
enqueues a fresh pump for its slot and ends, so django-q2's timeout and retry keep their meaning.
A slot is held through its WorkerHeartbeat row, so a duplicate pump for a slot exits at once.
`ensure_pumps` (at worker start and every minute by a Schedule) restarts pumps that died.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from mailer import scheduling
from mailer.delivery import Deliverer
from mailer.models import WorkerHeartbeat

logger = logging.getLogger("mailer.tasks")

BEAT_EVERY = 5.0  # seconds between heartbeats of a running pump
STALE_AFTER = timedelta(seconds=20)  # a slot whose heartbeat is older is free to take


def acquire_slot(slot: int, owner: str) -> bool:
    now = timezone.now()
    try:
        WorkerHeartbeat.objects.get_or_create(slot=slot, defaults={"beat_at": now - STALE_AFTER * 2})
    except IntegrityError:
        pass  # another pump created it at the same moment
    return bool(
        WorkerHeartbeat.objects.filter(slot=slot)
        .filter(Q(owner="") | Q(beat_at__lt=now - STALE_AFTER))
        .update(owner=owner, beat_at=now, pid=os.getpid(), host=socket.gethostname()[:128])
    )


def beat(slot: int, owner: str) -> bool:
    """Refresh the slot's heartbeat; False if the slot was lost (taken over after a stall)."""
    return bool(WorkerHeartbeat.objects.filter(slot=slot, owner=owner).update(beat_at=timezone.now()))


def release_slot(slot: int, owner: str) -> None:
    WorkerHeartbeat.objects.filter(slot=slot, owner=owner).update(owner="")


def pump(slot: int, seconds: float | None = None, handover: bool = True) -> str:
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not acquire_slot(slot, owner):
        return f"slot {slot} is busy"
    deliverer = Deliverer(owner)
    handled = 0
    deadline = time.monotonic() + (seconds if seconds is not None else settings.MAILER_PUMP_SECONDS)
    next_tick = next_beat = 0.0
    try:
        while time.monotonic() < deadline:
            try:
                if time.monotonic() >= next_tick:
                    scheduling.tick()
                    next_tick = time.monotonic() + 1.0
                if time.monotonic() >= next_beat:
                    if not beat(slot, owner):
                        logger.error("slot %s was taken over by another pump; this one stops", slot)
                        return f"slot {slot} lost"
                    next_beat = time.monotonic() + BEAT_EVERY
                done = deliverer.run_batch()
            except Exception:
                # A database hiccup or a bug must not kill the slot: log it, wait, go on.
                logger.exception("pump slot=%s round failed", slot)
                done = 0
                time.sleep(1.0)
            handled += done
            if not done:
                time.sleep(0.2)
    finally:
        deliverer.close()
        release_slot(slot, owner)
    if handover:
        async_task("mailer.tasks.pump", slot, task_name=f"pump-{slot}-{uuid.uuid4().hex[:8]}")
    return f"slot {slot}: {handled} messages"


def ensure_pumps() -> list[int]:
    """Enqueue a pump for every slot without a live one; returns the slots it enqueued. Also
    queues again a client import whose worker died (its lease ran out)."""
    from mailer.importing import resume_imports

    resume_imports()
    fresh = set(
        WorkerHeartbeat.objects.filter(beat_at__gte=timezone.now() - STALE_AFTER)
        .exclude(owner="")
        .values_list("slot", flat=True)
    )
    started = [slot for slot in range(settings.MAILER_SENDERS) if slot not in fresh]
    for slot in started:
        async_task("mailer.tasks.pump", slot, task_name=f"pump-{slot}-{uuid.uuid4().hex[:8]}")
    return started


def run_import(import_id: int) -> str:
    """A client import (mailer.importing): check, then write; resumable."""
    from mailer.importing import run_import

    return run_import(import_id)


def send_daily_report() -> str:
    """Every 15 minutes (schedule "daily-report"): send today's report once its time has come."""
    from mailer.reports import send_due_report

    return send_due_report()
