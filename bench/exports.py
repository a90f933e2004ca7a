"""Times a mailing's messages export of 1,000,000 rows as CSV and as .xlsx, with its peak memory.

    DATABASE_URL=sqlite:////tmp/bench_exports.sqlite3 python bench/exports.py [--rows N] [--runs 3] [--reseed]

Seeds the database named by DATABASE_URL (a throw-away one: SQLite file or PostgreSQL database)
with one mailing of N messages to N clients, in batches (reused on the next run unless --reseed).
Then, for each format and run, a fresh Python process requests `/mailings/<id>/messages.<kind>`
through Django's test client as a viewer with a Moscow profile in Russian, reads the whole body
and prints its wall time, its size and the process's peak RSS (ru_maxrss: Django included), as a
gunicorn worker would spend them. Prints min / median / max as a Markdown table
(docs/benchmarks.md, "Exports").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BATCH = 10_000


def setup() -> None:
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def seed(rows: int) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from accounts.models import Profile
    from accounts.roles import set_role
    from mailer.models import Mailing, MailingState

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    now = datetime.now(UTC).replace(microsecond=0)
    mailing = Mailing.objects.create(
        text="Скидка 10% на всё, до воскресенья",
        start_at=now - timedelta(days=1),
        end_at=now + timedelta(days=1),
        state=MailingState.FINISHED,
    )
    user = get_user_model().objects.create_user("bench-viewer", password="-")
    set_role(user, "viewer")
    profile = Profile.of(user)
    profile.timezone, profile.language = "Europe/Moscow", "ru"
    profile.save()
    stamp = now.strftime("%Y-%m-%d %H:%M:%S")
    clients = (
        "INSERT INTO mailer_client (phone, operator_code, tag, timezone, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
    )
    messages = (
        "INSERT INTO mailer_message (mailing_id, client_id, status, created_at, sent_at, attempts,"
        " last_error, next_attempt_at, locked_until, locked_by, sent_text_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, '', %s)"
    )
    text_id = mailing.current_text_id
    with connection.cursor() as cursor:
        for first in range(0, rows, BATCH):
            with transaction.atomic():
                numbers = range(first, min(first + BATCH, rows))
                cursor.executemany(
                    clients, [(f"7916{i:07d}", "916", "vip", "Europe/Moscow", stamp, stamp) for i in numbers]
                )
                cursor.execute(
                    "SELECT id FROM mailer_client WHERE phone >= %s ORDER BY phone", [f"7916{first:07d}"]
                )
                ids = [row[0] for row in cursor.fetchall()][: len(numbers)]
                cursor.executemany(
                    messages,
                    [
                        (
                            mailing.pk,
                            client_id,
                            "failed" if i % 25 == 0 else "sent",
                            stamp,
                            None if i % 25 == 0 else stamp,
                            1,
                            "HTTP 500 from gateway" if i % 25 == 0 else "",
                            stamp,
                            text_id,
                        )
                        for i, client_id in zip(numbers, ids, strict=True)
                    ],
                )
            print(f"\r  seeded {first + len(numbers):,} rows", end="", flush=True)
    print(f" in {time.monotonic() - started:.0f} s", flush=True)


def export(kind: str) -> None:
    """One export in this process; prints its figures as JSON."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from mailer.models import Mailing

    client = Client(HTTP_ACCEPT_LANGUAGE="ru")
    client.force_login(get_user_model().objects.get(username="bench-viewer"))
    mailing = Mailing.objects.get()
    started = time.monotonic()
    response = client.get(f"/mailings/{mailing.pk}/messages.{kind}")
    assert response.status_code == 200, response.status_code
    size = sum(len(piece) for piece in response.streaming_content)
    seconds = time.monotonic() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "bytes": size, "rss_mb": rss}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--kinds", default="csv,xlsx")
    parser.add_argument("--export", help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ:
        parser.error("set DATABASE_URL to a throw-away database, e.g. sqlite:////tmp/bench_exports.sqlite3")
    setup()
    if args.export:
        export(args.export)
        return
    from mailer.models import Message

    if args.reseed or Message.objects.count() != args.rows:
        url = os.environ["DATABASE_URL"]
        if url.startswith("sqlite:///") and args.reseed:
            Path(url.removeprefix("sqlite://")).unlink(missing_ok=True)
        elif Message.objects.exists():
            sys.exit("the database holds other messages: --reseed (SQLite) or another DATABASE_URL")
        seed(args.rows)
    results: dict[str, list[dict]] = {}
    for kind in args.kinds.split(","):
        for run in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--export", kind],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            print(f"  {kind} run {run + 1}: {figures}", flush=True)
            results.setdefault(kind, []).append(figures)

    def spread(values: list[float], fmt: str) -> str:
        return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))

    print(f"\n| {args.rows:,} rows, min / median / max | time, s | peak RSS, MB | file, MB |")
    print("|---|---|---|---|")
    for kind, runs in results.items():
        print(
            f"| {kind} | {spread([r['seconds'] for r in runs], '.1f')} | "
            f"{spread([r['rss_mb'] for r in runs], '.0f')} | {runs[0]['bytes'] / 1e6:.1f} |"
        )


if __name__ == "__main__":
    main()
