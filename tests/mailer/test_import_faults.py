"""A client import whose worker is killed (SIGKILL) while writing: the successor goes on from the
last row written; no row is lost, none counted twice."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from mailer import importing
from mailer.models import Client, ClientImport, ImportState

ROWS = 30_000


def _run(import_id: int) -> None:
    connections.close_all()
    importing.run_import(import_id)
    connections.close_all()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_writing_loses_and_doubles_nothing(monkeypatch):
    Client.objects.create(phone="79000000001", tag="old", timezone="UTC")  # one update among the rows
    text = "phone,tag\n" + "".join(f"79{i:09d},bulk\n" for i in range(1, ROWS + 1))
    imp = importing.start_import(io.BytesIO(text.encode()), enqueue=False)

    # Slow writes, so that the kill lands in the middle.
    original = importing._write_batch
    monkeypatch.setattr(
        importing, "_write_batch", lambda batch, imp: (time.sleep(0.2), original(batch, imp))[1]
    )
    connections.close_all()
    worker = multiprocessing.get_context("fork").Process(target=_run, args=(imp.pk,), daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        imp.refresh_from_db()
        if imp.state == ImportState.WRITING and imp.rows_written >= 2 * importing.CHUNK:
            break
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(5)

    imp.refresh_from_db()
    assert imp.state == ImportState.WRITING and 0 < imp.rows_written < ROWS
    # What the import says it wrote is exactly what is in the table: each chunk and its record
    # of progress committed together.
    assert Client.objects.filter(tag="bulk").count() == imp.rows_written

    # Its lease holds the import for a while; then the minute's housekeeping queues it again.
    assert importing.run_import(imp.pk) == "not due"
    ClientImport.objects.filter(pk=imp.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert importing.resume_imports() == [imp.pk]
    monkeypatch.setattr(importing, "_write_batch", original)
    assert importing.run_import(imp.pk) == ImportState.DONE

    imp.refresh_from_db()
    assert Client.objects.filter(tag="bulk").count() == ROWS
    assert (imp.created, imp.updated, imp.unchanged, imp.rows_written) == (ROWS - 1, 1, 0, ROWS)
    assert imp.written and imp.error_count == 0


@pytest.mark.django_db(transaction=True)
def test_others_writing_between_the_chunks_do_not_stop_the_import(monkeypatch):
    """The sending engine writes all the time. On SQLite, a read left open across the import's
    chunks made the next chunk's write fail at once with "database is locked" (seen in bin/demo)."""
    import threading

    text = "phone,tag\n" + "".join(f"79{i:09d},bulk\n" for i in range(1, 3 * importing.CHUNK + 1))
    monkeypatch.setattr(importing, "PIECE_BYTES", 4096)  # many pieces, read as the writes go
    imp = importing.start_import(io.BytesIO(text.encode()), enqueue=False)
    others = iter(range(10**6))

    def someone_else_writes() -> None:
        Client.objects.create(phone=f"7999{next(others):07d}", tag="other", timezone="UTC")
        connections.close_all()

    original = importing._batches

    def batches(rows):
        for batch in original(rows):
            writer = threading.Thread(target=someone_else_writes)
            writer.start()
            writer.join()
            yield batch

    monkeypatch.setattr(importing, "_batches", batches)
    assert importing.run_import(imp.pk) == ImportState.DONE
    assert Client.objects.filter(tag="bulk").count() == 3 * importing.CHUNK
    assert Client.objects.filter(tag="other").count() == 6  # three batches checked, three written


@pytest.mark.django_db
def test_an_import_whose_worker_keeps_dying_fails_saying_so(monkeypatch):
    """A file that kills its worker (or a host that keeps dying) is retried a few times, not queued
    again every minute for ever."""
    queued = []
    monkeypatch.setattr(importing, "_enqueue", queued.append)
    imp = importing.start_import(io.BytesIO(b"phone\n79161234567\n"), enqueue=False)
    for death in range(1, importing.WORKER_STOPS + 1):
        # A worker took it up (its lease) and died while writing: the lease runs out.
        expired = timezone.now() - timedelta(seconds=1)
        ClientImport.objects.filter(pk=imp.pk).update(
            state=ImportState.WRITING, lease_until=expired, rows_written=2
        )
        resumed = importing.resume_imports()
        assert importing.resume_imports() == []  # each death counted once, however often it looks
        imp.refresh_from_db()
        assert imp.worker_stops == death
        if death < importing.WORKER_STOPS:
            assert resumed == [imp.pk] and queued == [imp.pk] * death and imp.state == ImportState.WRITING
    assert resumed == [] and len(queued) == importing.WORKER_STOPS - 1
    assert imp.state == ImportState.FAILED and imp.finished_at and imp.written  # it had written rows
    assert imp.errors == [
        [
            0,
            "",
            "The worker stopped 3 times while importing this file, so the import was given up. "
            "Import the file again; if that stops too, tell an administrator.",
        ]
    ]
    assert importing.run_import(imp.pk) == "not due"


@pytest.mark.django_db
def test_a_long_check_keeps_its_lease_without_rows_to_write(monkeypatch):
    """The lease is renewed at every piece read: a file of errors (or blank lines) has no row to
    write for minutes, and a live worker must not look dead to the housekeeping."""
    monkeypatch.setattr(importing, "PIECE_BYTES", 4096)  # one piece per read
    text = "phone\n" + "bad\n" * 10_000  # 10 pieces, not one valid row
    imp = importing.start_import(io.BytesIO(text.encode()), enqueue=False)
    clock = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: clock[0])
    original = importing._StoredFile.readinto

    def readinto(self, target):
        clock[0] += importing.LEASE * 3 / 4  # each piece takes most of a lease
        assert importing.resume_imports() == []
        return original(self, target)

    monkeypatch.setattr(importing._StoredFile, "readinto", readinto)
    assert importing.run_import(imp.pk) == ImportState.FAILED
    imp.refresh_from_db()
    assert (imp.error_count, imp.worker_stops, imp.bytes_checked) == (10_000, 0, len(text))
