"""Times the dashboard's main pages on a big database: 100,000 clients and 1,000,000 messages
(or --messages N: 10,000,000 for the statistics goal), a stop list of 1% of the clients and an
audit log of 200,000 entries, on SQLite or PostgreSQL.

    python bench/dashboard_pages.py [--db var/bench_dashboard.sqlite3] [--runs 5] [--reseed]
    python bench/dashboard_pages.py --messages 10000000 --big 1000000 --reseed
    python bench/dashboard_pages.py --postgres --messages 10000000 --big 1000000 --reseed

Seeds a separate SQLite file with bulk inserts (about a minute; reused on the next run unless
--reseed), then requests each page with the Django test client several times and prints the median
in a Markdown table (docs/benchmarks.md, "Dashboard pages"). One mailing has 100,000 messages so
that its CSV export shows streaming: the peak Python memory of that export is printed too.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENTS = 100_000
MESSAGES = 1_000_000  # --messages
BIG_MAILING = 100_000  # messages of mailing #1 (--big; at most CLIENTS... see `rows`)
MAILINGS = 200  # the others share the rest
TAGS = ["retail", "vip", "wholesale", "new", "loyal", "b2b", ""]
CODES = ["900", "901", "903", "905", "910", "915", "916", "925", "926", "950", "977", "999"]
AUDIT_ENTRIES = 200_000
ZONES = ["Europe/Moscow", "Europe/Samara", "Asia/Yekaterinburg", "Asia/Novosibirsk", "UTC"]


def setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("MAILER_FREQUENCY_CAP", "2/day,5/week")  # counted in the audience preview
    import django

    django.setup()
    from django.conf import settings

    # No collectstatic here: serve static names as they are.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def seed() -> None:
    from django.core.management import call_command
    from django.db import connection, transaction

    from mailer.models import Client, Mailing, MailingState

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    rng = random.Random(1)
    now = datetime.now(UTC).replace(microsecond=0)
    with transaction.atomic():
        Client.objects.bulk_create(
            (
                Client(
                    phone=f"7{CODES[i % len(CODES)]}{i:07d}",
                    operator_code=CODES[i % len(CODES)],
                    tag=TAGS[i % len(TAGS)],
                    timezone=ZONES[i % len(ZONES)],
                    # Consent for six clients in seven; one in fifty at its frequency cap (issue 24).
                    consent_at=now - timedelta(days=400) if i % 7 else None,
                    consent_source="bench" if i % 7 else "",
                    capped_until=now + timedelta(days=3) if i % 50 == 0 else None,
                )
                for i in range(CLIENTS)
            ),
            batch_size=5000,
        )
    client_ids = list(Client.objects.order_by("id").values_list("id", flat=True))
    print(f"  clients: {time.monotonic() - started:.0f} s", flush=True)

    mailings = []
    for n in range(MAILINGS + 1):
        start = now - timedelta(days=30) + timedelta(hours=3.6 * n)
        running = n >= MAILINGS - 2
        mailings.append(
            Mailing(
                text=f"Offer number {n}: {rng.choice(['sale', 'news', 'bonus'])}",
                start_at=start,
                end_at=start + timedelta(days=2 if not running else 40),
                filter_tags=[TAGS[n % 6]] if n else [],
                state=MailingState.RUNNING if running else MailingState.FINISHED,
                started_at=start,
                audience_version=1,
                resolved_version=1,
            )
        )
    Mailing.objects.bulk_create(mailings)
    mailing_ids = list(Mailing.objects.order_by("start_at").values_list("id", flat=True))
    running_ids = set(mailing_ids[-2:])

    per_mailing = min((MESSAGES - BIG_MAILING) // MAILINGS, CLIENTS - 1)
    sql = (
        "INSERT INTO mailer_message (mailing_id, client_id, status, created_at, sent_at, attempts,"
        " last_error, next_attempt_at, locked_until, locked_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, '')"
    )

    def rows():
        for index, mailing_id in enumerate(mailing_ids):
            count = BIG_MAILING if index == 0 else per_mailing
            offset = 0 if index == 0 else rng.randrange(CLIENTS - count)
            base = mailings[index].start_at
            for k in range(count):
                if mailing_id in running_ids and k > count // 2:
                    status, sent, error = "pending", None, ""
                else:
                    roll = rng.random()
                    status = "sent" if roll < 0.93 else "failed" if roll < 0.97 else "expired"
                    sent = fmt(base + timedelta(seconds=k * 0.05)) if status == "sent" else None
                    error = "HTTP 500 from gateway" if status == "failed" else ""
                yield (mailing_id, client_ids[offset + k], status, fmt(base), sent, 1, error, fmt(base))

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY streams the rows: minutes fewer than executemany's one statement per row.
            columns = sql[sql.index("(") : sql.index(")") + 1]
            with cursor.cursor.copy(f"COPY mailer_message {columns} FROM STDIN") as copy:
                for row in rows():
                    copy.write_row((*row, None, ""))
        else:
            batch: list[tuple] = []
            for row in rows():
                batch.append(row)
                if len(batch) == 50_000:
                    cursor.executemany(sql, batch)
                    batch.clear()
            if batch:
                cursor.executemany(sql, batch)
    # The rows went in behind the engine's back: count them once, as `manage.py reconcile` does.
    from mailer.models import MailingCounts

    for mailing_id in mailing_ids:
        MailingCounts.reconcile(mailing_id)

    # A stop list of 1% of the clients, and an audit log of 200,000 entries (issue 13).
    from mailer.models import AuditEntry, StopEntry

    phones = Client.objects.order_by("id").values_list("phone", flat=True)[: CLIENTS // 100]
    StopEntry.objects.bulk_create(
        (StopEntry(phone=p, source="import", reason="bench") for p in phones.iterator()), batch_size=5000
    )
    actions = ["created", "edited", "paused", "resumed", "opted_out", "test_sent"]
    for first in range(0, AUDIT_ENTRIES, 5000):
        AuditEntry.objects.bulk_create(
            AuditEntry(
                at=now - timedelta(seconds=AUDIT_ENTRIES - i),
                actor_name=f"user{i % 20}",
                via="ui",
                action=actions[i % len(actions)],
                object_type="mailing",
                object_id=str(mailing_ids[i % len(mailing_ids)]),
                changes={"text": ["before", "after"]},
            )
            for i in range(first, min(first + 5000, AUDIT_ENTRIES))
        )
    with connection.cursor() as cursor:
        # As autovacuum leaves the tables of a running service: statistics and, on PostgreSQL, the
        # visibility map that index-only scans need (a bulk-loaded table has none).
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    print(f"  seeded in {time.monotonic() - started:.0f} s", flush=True)


CLICKS = 1_000_000


def seed_clicks() -> None:
    """1,000,000 clicks on the big mailing's links (issue 25), as the clicks counting leaves them:
    its clients who clicked (Clicker, one in two of its clients), clicks per minute over a day,
    the kept counts; its text with a link and the first 1,000 messages' own texts. Once."""
    from django.db import transaction
    from django.db.models import Min

    from mailer.models import (
        Clicker,
        ClickMinute,
        Mailing,
        MailingCounts,
        MessageStatus,
        PersonalText,
    )

    big = Mailing.objects.order_by("start_at").first()
    if Clicker.objects.filter(mailing=big).exists():
        return
    started = time.monotonic()
    print(f"Seeding {CLICKS:,} clicks ...", flush=True)
    Mailing.objects.filter(pk=big.pk).update(
        text=big.text + " https://shop.example.ru/sale", track_links=True
    )
    first = big.messages.aggregate(at=Min("sent_at"))["at"] or datetime.now(UTC)
    rows = (
        big.messages.filter(status=MessageStatus.SENT)
        .order_by("id")
        .values_list("id", "client_id", "client__phone")
    )
    clickers = clicks = 0
    batch: list = []
    texts: list = []
    for message_id, client_id, phone in rows.iterator(chunk_size=50_000):
        if len(texts) < 1000:
            texts.append(
                PersonalText(
                    message_id=message_id,
                    text=f"{big.text} http://127.0.0.1:8000/l/Ab3dE{message_id:05d}"[:300],
                    parts=2,
                )
            )
        if message_id % 2 or clicks >= CLICKS:
            continue
        n = 1 + (message_id // 2) % 4  # 1 to 4 clicks each
        n = min(n, CLICKS - clicks)
        at = first + timedelta(minutes=(message_id * 7) % 1440)
        batch.append(
            Clicker(
                mailing=big,
                client_id=client_id,
                phone=phone,
                first_at=at,
                last_at=at + timedelta(minutes=n),
                clicks=n,
            )
        )
        clickers, clicks = clickers + 1, clicks + n
        if len(batch) >= 20_000:
            Clicker.objects.bulk_create(batch, batch_size=2000)
            batch = []
    with transaction.atomic():
        Clicker.objects.bulk_create(batch, batch_size=2000)
        PersonalText.objects.bulk_create(texts, ignore_conflicts=True)
        minute = first.replace(second=0, microsecond=0)
        ClickMinute.objects.bulk_create(
            ClickMinute(
                mailing=big, minute=minute + timedelta(minutes=i), clicks=clicks // 1440 + (i < clicks % 1440)
            )
            for i in range(1440)
        )
        MailingCounts.objects.filter(mailing=big).update(clicks=clicks, clickers=clickers)
    print(f"  {clicks:,} clicks by {clickers:,} clients in {time.monotonic() - started:.0f} s", flush=True)


def seed_receipts() -> None:
    """Delivery receipts for the big mailing's messages (issue 26), as applying them leaves them:
    90% delivered, 5% undelivered, 2% rejected, the rest none yet; its kept counts, per operator,
    per reason and per minute; and 1% of the clients undeliverable. Once."""
    from django.db import connection, transaction
    from django.db.models import Count, Min

    from mailer.models import (
        Client,
        DeliveryMinute,
        DeliveryReason,
        Mailing,
        MailingCounts,
        Message,
        MessageStatus,
        OperatorCounts,
    )

    big = Mailing.objects.order_by("start_at").first()
    if OperatorCounts.objects.filter(mailing=big, delivered__gt=0).exists():
        return
    started = time.monotonic()
    print("Seeding receipts ...", flush=True)
    table = Message._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET delivered_at = sent_at, "
            "delivery_status = CASE WHEN id %% 100 < 5 THEN 'undelivered' WHEN id %% 100 < 7 THEN 'rejected' "
            "WHEN id %% 100 < 10 THEN NULL ELSE 'delivered' END, "
            "delivery_error = CASE WHEN id %% 100 < 5 THEN 'absent subscriber' "
            "WHEN id %% 100 < 7 THEN 'sender name not registered' ELSE '' END "
            "WHERE mailing_id = %s AND status = %s",
            [big.pk, MessageStatus.SENT],
        )
        cursor.execute(
            f"UPDATE {table} SET delivered_at = NULL WHERE mailing_id = %s AND delivery_status IS NULL",
            [big.pk],
        )
    MailingCounts.reconcile(big.pk)  # delivered, not delivered, and per operator, from the rows
    row = MailingCounts.objects.get(mailing=big)
    first = big.messages.aggregate(at=Min("sent_at"))["at"] or datetime.now(UTC)
    minute = first.replace(second=0, microsecond=0)
    with transaction.atomic():
        DeliveryReason.objects.bulk_create(
            DeliveryReason(mailing=big, status=status, error=error, messages=n)
            for status, error, n in big.messages.filter(delivery_status__in=["undelivered", "rejected"])
            .order_by()
            .values_list("delivery_status", "delivery_error")
            .annotate(n=Count("id"))
        )
        DeliveryMinute.objects.bulk_create(
            DeliveryMinute(
                mailing=big,
                minute=minute + timedelta(minutes=i),
                delivered=row.delivered // 1440 + (i < row.delivered % 1440),
            )
            for i in range(1440)
        )
        Client.objects.filter(id__in=Client.objects.order_by("id").values("id")[: CLIENTS // 100]).update(
            undeliverable_at=datetime.now(UTC), undelivered_in_row=3
        )
    print(
        f"  {row.delivered:,} delivered, {row.undelivered:,} not, in {time.monotonic() - started:.0f} s",
        flush=True,
    )


def bench(runs: int, with_export: bool = True) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client as HttpClient

    from mailer.models import Client, Mailing, Message

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True})
    browser = HttpClient()
    browser.force_login(user)
    big = Mailing.objects.order_by("start_at").first()
    other = Mailing.objects.order_by("-start_at")[5]
    phone = Client.objects.order_by("id")[5000].phone
    htmx = {"HTTP_HX_REQUEST": "true"}
    pages = [
        ("Home", "/", {}),
        ("Home, live part (htmx poll)", "/live/", htmx),
        ("Mailings", "/mailings/", {}),
        ("Mailings, page 5 (htmx)", "/mailings/?page=5", htmx),
        ("Mailings, text search", "/mailings/?q=bonus", htmx),
        ("New mailing form", "/mailings/new/", {}),
        (
            "Audience count (tag vip): stop list, consent and cap, and the text's length",
            "/mailings/audience/?filter_tags=vip&text=Скидка",
            htmx,
        ),
        (
            f"Audience count, all {CLIENTS:,} clients: stop list, consent and cap",
            "/mailings/audience/?text=Скидка",
            htmx,
        ),
        (
            "The same while the text is typed (the filter unchanged)",
            "/mailings/audience/?filter_tags=vip&text=Скидка&audience_key=vip|%23|%23|advertising"
            "&audience_count=10&stop_list_count=1&no_consent_count=2&undeliverable_count=0&capped_count=3",
            htmx,
        ),
        (f"Mailing detail, {BIG_MAILING:,} messages and their clicks", f"/mailings/{big.pk}/", {}),
        ("Mailing detail, failed only (htmx)", f"/mailings/{big.pk}/?status=failed", htmx),
        (
            "Mailing detail, rejected receipts only (htmx)",
            f"/mailings/{big.pk}/?delivery_status=rejected",
            htmx,
        ),
        (
            "Mailing detail, expired receipts only: none (htmx)",
            f"/mailings/{big.pk}/?delivery_status=expired",
            htmx,
        ),
        (f"Numbers that no longer answer ({CLIENTS // 100:,})", "/clients/undeliverable/", {}),
        (f"Mailing detail, {other.messages.count():,} messages", f"/mailings/{other.pk}/", {}),
        ("Mailing stats (API)", f"/api/v1/mailings/{big.pk}/stats/", {}),
        ("Overall stats (API)", "/api/v1/stats/", {}),
        ("Statistics", "/statistics/", {}),
        (
            f"Statistics totals over all {Message.objects.count():,} messages (loaded after the page)",
            "/statistics/totals/",
            htmx,
        ),
        (
            "Statistics, last 7 days (htmx)",
            f"/statistics/?start_from={(datetime.now(UTC) - timedelta(days=7)).date()}",
            htmx,
        ),
        ("Clients", "/clients/", {}),
        ("Clients, tag filter page 10 (htmx)", "/clients/?tag=vip&page=10", htmx),
        ("Clients, phone prefix", f"/clients/?phone={phone[:7]}", htmx),
        ("Statistics CSV (201 mailings)", "/statistics/mailings.csv", {}),
        (f"Stop list ({CLIENTS // 100:,} phones)", "/stop-list/", {}),
        ("Stop list, phone search (htmx)", f"/stop-list/?phone={phone[1:6]}", htmx),
        (f"Audit log ({AUDIT_ENTRIES:,} entries)", "/audit/", {}),
        ("Audit log, one user, page 10 (htmx)", "/audit/?actor=user7&page=10", htmx),
    ]
    print(
        f"\n{Message.objects.count():,} messages, {Client.objects.count():,} clients, "
        f"{Mailing.objects.count()} mailings; median of {runs} runs\n"
    )
    print("| page | min ms | median ms | max ms |\n|---|---:|---:|---:|")
    for name, url, headers in pages:
        # Not counted: a process's first request of a page loads its templates (100-200 ms).
        browser.get(url, **headers)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            response = browser.get(url, **headers)
            if response.streaming:
                for _chunk in response.streaming_content:
                    pass
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code in (200, 286), (url, response.status_code)
        print(
            f"| {name} | {min(times):.0f} | {statistics.median(times):.0f} | {max(times):.0f} |", flush=True
        )

    if not with_export:
        return

    # The big export, read to the end: its time, then (a second run) its peak Python memory.
    def export() -> tuple[int, int]:
        response = browser.get(f"/mailings/{big.pk}/messages.csv")
        size = rows = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            rows += chunk.count(b"\n")
        return size, rows

    t = time.perf_counter()
    size, rows = export()
    elapsed = time.perf_counter() - t
    tracemalloc.start()
    export()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"| Messages CSV of the {BIG_MAILING:,}-message mailing ({rows - 1:,} rows, {size / 1e6:.1f} MB; "
        f"peak Python memory {peak / 1e6:.1f} MB) | {elapsed * 1000:.0f} | (one run) | |"
    )


def main() -> None:
    global MESSAGES, BIG_MAILING, CLIENTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(ROOT / "var" / "bench_dashboard.sqlite3"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="database mailer_bench_pages on 127.0.0.1")
    parser.add_argument("--messages", type=int, default=MESSAGES)
    parser.add_argument("--big", type=int, default=BIG_MAILING, help="messages of the biggest mailing")
    parser.add_argument("--no-export", action="store_true", help="skip the timing of the big CSV export")
    args = parser.parse_args()
    MESSAGES, BIG_MAILING = args.messages, args.big
    CLIENTS = max(CLIENTS, BIG_MAILING)
    if args.postgres:
        import subprocess

        exists = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SELECT 1 FROM pg_database WHERE datname='mailer_bench_pages'"],
            capture_output=True, text=True,
        ).stdout.strip() == "1"  # fmt: skip
        fresh = args.reseed or not exists
        if fresh:
            for sql in ("DROP DATABASE IF EXISTS mailer_bench_pages", "CREATE DATABASE mailer_bench_pages"):
                subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
        setup("postgres://postgres@127.0.0.1:5432/mailer_bench_pages")
    else:
        db = Path(args.db)
        fresh = args.reseed or not db.exists()
        if args.reseed:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.parent.mkdir(parents=True, exist_ok=True)
        setup(f"sqlite:///{db}")
    if fresh:
        print("Seeding ...", flush=True)
        seed()
    else:  # data seeded by an earlier version: its tables as this one has them
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    seed_clicks()
    seed_receipts()
    bench(args.runs, with_export=not args.no_export)


if __name__ == "__main__":
    main()
