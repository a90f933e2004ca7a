"""Benchmark: import N clients from CSV (default 100,000) into a fresh database, then re-import it.

    DATABASE_URL=... python bench/import_clients.py [N]

Prints the wall time of three imports: all new (bulk inserts), the same file again (all known,
nothing to change), the file with every tag changed (a few distinct tags: grouped updates) and the
worst case for updates, every row a tag of its own (one UPDATE per row). Uses a throw-away test database (Django's test runner
machinery), so it never touches real data.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
os.environ.setdefault("SECRET_KEY", "bench")

import django

django.setup()

from django.db import connection
from django.test.utils import setup_test_environment, teardown_test_environment

from mailer.importing import import_clients
from mailer.models import Client

TIMEZONES = ["Europe/Moscow", "Asia/Novosibirsk", "UTC", "Europe/Kaliningrad"]


def make_csv(n: int, tag: str = "tag", tags: int = 7) -> bytes:
    lines = ["phone,tag,timezone"]
    lines += [f"79{i:09d},{tag}{i % tags},{TIMEZONES[i % len(TIMEZONES)]}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        runs = [
            ("new clients", make_csv(n)),
            ("same file again", make_csv(n)),
            ("every tag changed", make_csv(n, tag="other")),
            ("every tag changed, each row its own tag", make_csv(n, tag="own", tags=n)),
        ]
        for label, text in runs:
            start = time.perf_counter()
            report = import_clients(text, all_or_nothing=True)
            elapsed = time.perf_counter() - start
            assert report.ok and report.written, report.errors[:5]
            print(
                f"{connection.vendor}: {n:,} rows, {label}: {elapsed:.2f} s "
                f"(created {report.created:,}, updated {report.updated:,}, unchanged {report.unchanged:,})"
            )
        assert Client.objects.count() == n
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


if __name__ == "__main__":
    main()
