"""The worker process, `manage.py run_worker`: every deployment's worker command.

One worker runs, on its host, MAILER_SENDERS **sender** processes and one django-q2 cluster (ORM
broker) for everything else (imports, the daily report, housekeeping). Capacity grows with the
hosts: each worker adds its own senders, and nothing global needs to change, because what keeps
two senders apart is the lease on each message, not a count of slots.

A sender loops: tick the schedule about once a second, and at a scheduled mailing's `start_at`
itself (scheduling.next_start); go on resolving an audience it has begun (a slice at a time, so its
first messages go out meanwhile); claim and send; beat every 5 s. Its writer thread writes the
answers as they come, meanwhile (Deliverer.start_writer). It runs until it is told to stop; there
is no hand-over between tasks.

Stopping (SIGTERM or SIGINT to the worker): each sender claims nothing more, sends nothing that
has not left yet, gives the requests in flight up to Gateway.STOP_DRAIN (5 s), writes their
outcomes and exits; the django-q2 cluster, in a process group of its own (_cluster_main), stops
its own way on the supervisor's SIGTERM, in about a second. Whatever is still running after STOP_SECONDS
is killed, which is safe too (leases run out). So the worker is out well within Docker's default
10 s grace period, and a new worker can take every message over at once.

The database going away (a restart, a failover, a lock held too long) stops nothing for good: a
sender keeps the outcomes of the round in flight and writes them when the database is back,
before it claims anything new (Deliverer.flush, Deliverer.refused).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django import db
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from engine import scheduling, testsends
from engine.delivery import WRITE_RETRY_MAX, Deliverer
from mailer.backends.sqlite3.base import Turn
from mailer.models import WorkerHeartbeat

logger = logging.getLogger("mailer.worker")

BEAT_EVERY = 5.0  # seconds between a sender's heartbeats
TICK_EVERY = 1.0  # seconds between schedule ticks
STOP_SECONDS = 8.0  # after SIGTERM, what is still running is killed
# A sender that waits for the database tries again after this, doubling up to the maximum; while it
# has answers to write, at most as far apart as a writer's tries (they must be in within their lease).
DB_RETRY_FIRST, DB_RETRY_MAX = 0.2, 5.0
FORGET_AFTER = timedelta(hours=1)  # heartbeat rows of senders gone this long are deleted
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Stop:
    """Set by SIGTERM/SIGINT in a sender process."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True


def beat(name: str, slot: int, started: bool = False) -> None:
    now = timezone.now()
    fields = {"beat_at": now, "slot": slot, "pid": os.getpid(), "host": socket.gethostname()[:128]}
    if started or not WorkerHeartbeat.objects.filter(owner=name).update(beat_at=now):
        WorkerHeartbeat.objects.update_or_create(owner=name, defaults=fields)


def run_sender(name: str, slot: int, stop: Stop, deliverer: Deliverer | None = None) -> int:
    """One sender's loop, until `stop()`; returns the messages it handled. A sender of its own
    (not a test's `deliverer`) writes answers in a thread of its own (Deliverer.start_writer)."""
    if deliverer is None:
        deliverer = Deliverer(name)
        deliverer.start_writer()
    handled = 0
    next_tick = next_beat = 0.0
    db_wait = 0.0
    try:
        while not stop():
            try:
                if not deliverer.writing:
                    deliverer.flush()  # outcomes the database missed go first
                if time.monotonic() >= next_beat:
                    beat(name, slot, started=not next_beat)
                    next_beat = time.monotonic() + BEAT_EVERY
                if time.monotonic() >= next_tick:
                    soon = scheduling.tick()  # a mailing due within the second: tick right then
                    wait = TICK_EVERY if soon is None else min(TICK_EVERY, soon + 0.01)
                    next_tick = time.monotonic() + wait
                else:
                    scheduling.resolve_more()  # the rest of an audience, between steps of sending
                testsends.run_due(deliverer)  # never waits: at most one test in flight per sender
                done = deliverer.run_batch(stopping=stop, overlap=True)
                if db_wait:
                    logger.warning("sender %s: the database is back", name)
                db_wait = 0.0
            except DatabaseError as e:
                db.close_old_connections()  # a broken connection is replaced at the next query
                most = WRITE_RETRY_MAX if deliverer.busy else DB_RETRY_MAX
                db_wait = min(db_wait * 2, most) if db_wait else DB_RETRY_FIRST
                logger.warning(
                    "sender %s: database unavailable (%s); %s outcomes kept; trying again in %.1fs",
                    name,
                    str(e).strip()[:200],
                    deliverer.unrecorded_messages,
                    db_wait,
                )
                _sleep(db_wait, stop)
                continue
            except Exception:
                # A bug must not kill the sender: log it, wait, go on.
                logger.exception("sender %s: round failed", name)
                done = 0
                _sleep(1.0, stop)
            handled += done
            if not done and not deliverer.busy:
                _sleep(min(0.2, max(next_tick - time.monotonic(), 0.0)), stop)
        _finish(deliverer, name)
    finally:
        deliverer.close()
    return handled


def _finish(deliverer: Deliverer, name: str) -> None:
    """On stop: write the last round if the database lets us within the time left, and leave."""
    # What has not left is not sent; requests in flight get Gateway.STOP_DRAIN, then are cut
    # short. Their answers are written as they come, while the database lets us: from here on by
    # this thread.
    deliverer.stop_writer()
    while deliverer.out:
        deliverer.take(0.1)
        with contextlib.suppress(DatabaseError):
            deliverer.flush()
    try:
        testsends.collect(deliverer, wait=STOP_SECONDS / 4)
    except DatabaseError:
        pass  # its lease runs out and housekeeping reports it (testsends.expire_stale)
    deadline = time.monotonic() + STOP_SECONDS / 2
    while deliverer.unrecorded and time.monotonic() < deadline:
        try:
            deliverer.flush()
        except DatabaseError:
            time.sleep(0.2)
    if deliverer.unrecorded:
        logger.error(
            "sender %s stopped with %s outcomes unwritten: their leases run out and they are sent "
            "again, with the same message ids",
            name,
            deliverer.unrecorded_messages,
        )
    try:
        WorkerHeartbeat.objects.filter(owner=name).delete()
    except DatabaseError:
        pass
    logger.info("sender %s stopped", name)


def _sleep(seconds: float, stop: Stop) -> None:
    deadline = time.monotonic() + seconds
    while not stop() and time.monotonic() < deadline:
        time.sleep(min(0.05, seconds))


def _sender_main(name: str, slot: int) -> None:
    stop = Stop()
    stop.install()
    db.connections.close_all()  # never share the parent's connection
    _yield_cpu(settings.MAILER_SENDER_NICE)
    Turn.yields = True  # on SQLite, a staff member's save waiting to write goes first
    run_sender(name, slot, stop)


def _yield_cpu(niceness: int) -> None:
    """Lower this sender's CPU priority (MAILER_SENDER_NICE), so that the web on the same host
    answers first. Linux shares the CPU between sessions (autogroups) before it shares it between
    their processes, and a process manager (honcho, systemd) starts each Procfile line in a
    session of its own: that session, the worker's, is lowered too. Not a terminal's session,
    which holds the shell it was started from."""
    os.nice(niceness)
    try:
        open("/dev/tty").close()  # only whether there is one
    except OSError:  # no terminal: the session is the worker's own
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(niceness))


def _cluster_main(supervisor: int) -> None:
    from django.core.management import call_command

    # A process group of its own: a signal to the worker's whole group (honcho's SIGTERM, a
    # terminal's Ctrl-C) would also reach django-q2's sentinel and its children, which die of it
    # at once, and the cluster's main process then waits for them forever (it was SIGKILLed). It
    # is stopped by the supervisor's SIGTERM to its main process alone, in about a second.
    os.setpgid(0, 0)
    _die_with(supervisor)
    db.connections.close_all()
    call_command("qcluster")


def _die_with(parent: int) -> None:
    """Out of the worker's group, the cluster would outlive a SIGKILLed supervisor: have Linux send
    it SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), so it stops its own way."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _descendants(pid: int) -> list[int]:
    """The processes under `pid` (django-q2's own), deepest first, from /proc (Linux)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found = children + found
        frontier = children
    return found


def forget_gone_senders() -> int:
    """Housekeeping: heartbeat rows of senders that stopped beating long ago (killed hard)."""
    return WorkerHeartbeat.objects.filter(beat_at__lt=timezone.now() - FORGET_AFTER).delete()[0]


def run(senders: int | None = None, cluster: bool = True) -> None:
    """The worker's supervisor: start the processes, restart one that dies, stop them all on
    SIGTERM/SIGINT within STOP_SECONDS."""
    senders = settings.MAILER_SENDERS if senders is None else senders
    worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:4]}"
    context = multiprocessing.get_context("fork")
    db.connections.close_all()
    specs = {f"{worker_id}/{slot}": (_sender_main, (f"{worker_id}/{slot}", slot)) for slot in range(senders)}
    if cluster:
        specs["django-q2"] = (_cluster_main, (os.getpid(),))
    children: dict[str, multiprocessing.Process] = {}
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))

    def start(key: str) -> None:
        target, args = specs[key]
        children[key] = context.Process(target=target, args=args, name=key)
        children[key].start()

    for key in specs:
        start(key)
    logger.info("worker %s: %s senders and the django-q2 cluster started", worker_id, senders)
    while not stopping:
        for key, process in list(children.items()):
            if not process.is_alive() and not stopping:
                logger.error(
                    "worker %s: %s exited (code %s); restarting it", worker_id, key, process.exitcode
                )
                time.sleep(1.0)
                start(key)
        time.sleep(0.2)
    logger.info("worker %s: stopping", worker_id)
    for process in children.values():
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in children.values():
        process.join(max(deadline - time.monotonic(), 0))
    for key, process in children.items():
        if process.is_alive():
            logger.error("worker %s: %s did not stop in %ss; killed", worker_id, key, STOP_SECONDS)
            for pid in [*_descendants(process.pid), process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.join(2)
    logger.info("worker %s stopped", worker_id)
