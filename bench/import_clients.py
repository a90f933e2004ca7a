"""Benchmark: a client import of N rows (default 1,000,000) as a worker runs it: time and peak memory.

    DATABASE_URL=... python bench/import_clients.py [N] [RUNS]

Stores a generated CSV as an upload would (mailer.importing.start_import), then runs the task
(mailer.importing.run_import: check, then write) in a fresh Python process, as a django-q2 worker
would, and prints that process's wall time and peak RSS (ru_maxrss). Per run: all new clients
(into an empty table), then the same file again (every phone known, nothing to change).
Uses a throw-away test database (Django's test runner machinery), so it never touches real data.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
os.environ.setdefault("SECRET_KEY", "bench")

import django

django.setup()

from django.db import connection
from django.test.utils import setup_test_environment, teardown_test_environment

from mailer.importing import start_import
from mailer.models import Client, ClientImport

TIMEZONES = ["Europe/Moscow", "Asia/Novosibirsk", "UTC", "Europe/Kaliningrad"]

# The worker: a fresh interpreter, pointed at the benchmark's test database.
WORKER = """
import json, os, resource, sys, time
import django
from django.conf import settings
django.setup()
settings.DATABASES["default"]["NAME"] = os.environ["BENCH_DB_NAME"]
from mailer.importing import run_import
start = time.perf_counter()
state = run_import(int(sys.argv[1]))
print(json.dumps({"state": state, "seconds": time.perf_counter() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


class CsvStream(io.RawIOBase):
    """The generated file, produced as it is read: the benchmark itself stays small too."""

    def __init__(self, n: int) -> None:
        self.lines = (f"79{i:09d},tag{i % 7},{TIMEZONES[i % 4]}\n".encode() for i in range(n))
        self.buffer = b"phone,tag,timezone\n"

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while len(self.buffer) < len(target):
            line = next(self.lines, None)
            if line is None:
                break
            self.buffer += line
        n = min(len(target), len(self.buffer))
        target[:n], self.buffer = self.buffer[:n], self.buffer[n:]
        return n


def run(n: int) -> dict:
    imp = start_import(io.BufferedReader(CsvStream(n), 2**20), enqueue=False)
    env = os.environ | {"BENCH_DB_NAME": connection.settings_dict["NAME"]}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(imp.pk)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    imp.refresh_from_db()
    assert result["state"] == "done" and imp.written and not imp.error_count, (result, imp.errors[:3])
    return result | {"created": imp.created, "unchanged": imp.unchanged, "mb": imp.size / 2**20}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0)
    results: dict[str, list[dict]] = {"new clients": [], "same file again": []}
    try:
        for i in range(runs):
            # An empty table for "all new": a raw DELETE (the ORM's would fetch a million ids).
            Client.objects.all()._raw_delete(Client.objects.db)
            ClientImport.objects.all().delete()
            for label in results:
                result = run(n)
                results[label].append(result)
                print(
                    f"run {i + 1}, {label}: {result['seconds']:.1f} s, peak RSS {result['rss_mb']:.0f} MB "
                    f"(file {result['mb']:.1f} MB; created {result['created']:,}, unchanged {result['unchanged']:,})",
                    flush=True,
                )
        assert Client.objects.count() == n
        for label, rs in results.items():
            secs = [r["seconds"] for r in rs]
            rss = [r["rss_mb"] for r in rs]
            print(
                f"{connection.vendor}, {n:,} rows, {label}: time min/median/max "
                f"{min(secs):.1f}/{statistics.median(secs):.1f}/{max(secs):.1f} s, peak RSS "
                f"{min(rss):.0f}/{statistics.median(rss):.0f}/{max(rss):.0f} MB"
            )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


if __name__ == "__main__":
    main()
