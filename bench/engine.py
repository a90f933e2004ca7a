"""Benchmark of the sending engine, as it runs in production: `manage.py run_worker` (its
sender processes and the django-q2 cluster) against the gateway stand-in in its own process.

    .venv/bin/python bench/engine.py --db sqlite --latency 0
    .venv/bin/python bench/engine.py --db postgres --latency 0.05
    .venv/bin/python bench/engine.py --db postgres --clients 20000 --latency 0.05 --error-rate 0.2
    .venv/bin/python bench/engine.py --db postgres --hosts 2      # two workers, as two hosts
    .venv/bin/python bench/engine.py --db sqlite --reuse-seed    # seed once, copy for each run
    .venv/bin/python bench/engine.py --db sqlite --clients 200000 --reuse-seed --first  # the start only

Measures, for one mailing to N clients: time to resolve the audience, time from start_at to the
first message, to 99% and to 100% of the messages sent (the retry tail), messages per second
(first to last accepted message), peak RSS of each worker process, and, as the ceiling, a bare
aiohttp client loop (2 processes) against the same stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import (  # bench/common.py: a script's folder is on its path
    cpu_seconds,
    free_port,
    wait_for,
    wait_for_senders,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "bench-token"


def psql(sql: str) -> str:
    command = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qAtc", sql]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def bare_client(url: str, n: int, concurrency: int, out) -> None:
    import aiohttp

    async def run() -> float:
        connector = aiohttp.TCPConnector(limit=concurrency)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            sem = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with sem:
                    body = {"id": i, "phone": 79001234567, "text": "ceiling"}
                    async with session.post(f"{url}/v1/send/{i}", json=body) as resp:
                        await resp.read()

            start = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            return time.perf_counter() - start

    out.put(asyncio.run(run()))


def ceiling(url: str, n: int, concurrency: int, processes: int = 2) -> float:
    queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=bare_client, args=(url, n, concurrency, queue))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    times = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return n * processes / max(times)


def rss_of_children(parent: int) -> dict[int, int]:
    """Current RSS in kB of `parent` and all its descendants."""
    result = {}
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    todo = [parent]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        result[pid] = int(line.split()[1])
        except OSError:
            pass
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--cap", default="", help="MAILER_FREQUENCY_CAP, e.g. 5/day: its check on")
    parser.add_argument("--senders", type=int, default=2, help="MAILER_SENDERS of each worker")
    parser.add_argument("--hosts", type=int, default=1, help="run_worker processes, as that many hosts")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of the stand-in's answers that are 500s"
    )
    parser.add_argument(
        "--first",
        action="store_true",
        help="only the start: from start_at to the first message, then stop (no probe, no ceiling)",
    )
    parser.add_argument(
        "--reuse-seed",
        action="store_true",
        help="keep the seeded clients (per --clients and migrations) and start each run from a copy",
    )
    args = parser.parse_args()

    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    # The seeded clients, kept with --reuse-seed: seeding 100,000 clients takes minutes, a copy
    # seconds. Named by the schema (the migrations' names) and the number of clients.
    migrations = sorted(p.name for p in ROOT.glob("*/migrations/0*.py"))
    seed = f"{args.clients}_{hashlib.sha1(' '.join(migrations).encode()).hexdigest()[:8]}"
    seeded = False
    if args.db == "sqlite":
        path = var / "bench.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        kept = var / f"bench-seed-{seed}.sqlite3"
        if args.reuse_seed and kept.exists():
            shutil.copyfile(kept, path)
            seeded = True
        db_url = f"sqlite:///{path}"
    else:
        kept = f"mailer_bench_seed_{seed}"
        psql("DROP DATABASE IF EXISTS mailer_bench")
        exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{kept}'").strip()
        if args.reuse_seed and exists:
            psql(f"CREATE DATABASE mailer_bench TEMPLATE {kept}")
            seeded = True
        else:
            psql("CREATE DATABASE mailer_bench")
        db_url = "postgres://postgres@127.0.0.1:5432/mailer_bench"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "bench",
        "MAILER_PROVIDER_URL": f"http://127.0.0.1:{port}",
        "MAILER_PROVIDER_TOKEN": TOKEN,
        "MAILER_SENDERS": str(args.senders),
        "LOG_LEVEL": "INFO",
        # An advertising mailing, with the guardrails' checks on (consent, the stop list, and the
        # frequency cap if --cap); quiet hours off, or a run at night would measure the wait.
        "MAILER_QUIET_HOURS": "",
        "MAILER_FREQUENCY_CAP": args.cap,
    }
    os.environ.update(env)
    python = sys.executable
    manage = [python, str(ROOT / "manage.py")]
    if not seeded:
        subprocess.run([*manage, "migrate", "-v0"], check=True, env=env)
        subprocess.run(
            [*manage, "seed_demo", "--clients", str(args.clients), "--no-mailings"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if args.reuse_seed and args.db == "sqlite":
            with sqlite3.connect(path) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the one file
            shutil.copyfile(path, kept)
        elif args.reuse_seed:
            psql(f"DROP DATABASE IF EXISTS {kept}")
            psql(f"CREATE DATABASE {kept} TEMPLATE mailer_bench")

    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "mailer.settings"
    django.setup()
    from datetime import timedelta

    from django.db.models import Max, Min
    from django.utils import timezone

    from engine import scheduling
    from mailer.models import Mailing, MailingState, Message, MessageStatus

    if args.db == "postgres":
        from django.db import connection

        with connection.cursor() as cursor:
            # As autovacuum soon would after the seeding, but never does in a copy of the seeded
            # database (a copy starts with no count of changes): without it, the planner took the
            # 1,000,000 seeded clients for a few thousand, and read them all for each chunk of an
            # audience (0.85-2 s a chunk instead of 8 ms).
            cursor.execute("ANALYZE")
    if args.first:
        first_message(args, manage, env, port, var)
        return
    # Audience resolution on its own (then undone).
    probe = Mailing.objects.create(
        text="probe",
        start_at=timezone.now(),
        end_at=timezone.now() + timedelta(hours=1),
        state=MailingState.RUNNING,
        started_at=timezone.now(),
    )
    t = time.perf_counter()
    scheduling.resolve_audience(probe, timezone.now())
    resolve_seconds = time.perf_counter() - t
    audience = probe.messages.count()  # the demo's clients with consent to advertising
    assert audience == probe.matching_clients().count()
    probe.delete()

    provider = start_provider(args, manage, env, port)
    ceiling_rate = ceiling(f"http://127.0.0.1:{port}", 20_000, 64)

    workers = start_workers(args, manage, env, var, args.hosts)
    try:
        cpu_before, cpu = sum(cpu_seconds(worker.pid) for worker in workers), None
        start_at = timezone.now() + timedelta(seconds=3)
        mailing = Mailing.objects.create(
            text="Benchmark: hello!", start_at=start_at, end_at=start_at + timedelta(hours=1)
        )
        peak: dict[int, int] = {}
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            for worker in workers:
                for pid, kb in rss_of_children(worker.pid).items():
                    peak[pid] = max(peak.get(pid, 0), kb)
            mailing.refresh_from_db()
            if mailing.state == MailingState.FINISHED:
                cpu = sum(cpu_seconds(worker.pid) for worker in workers) - cpu_before
                break
            time.sleep(0.5)
        span = Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).aggregate(
            first=Min("sent_at"), last=Max("sent_at")
        )
        sent_messages = Message.objects.filter(mailing=mailing, status=MessageStatus.SENT)
        sent = sent_messages.count()
        by_time = sent_messages.order_by("sent_at").values_list("sent_at", flat=True)
        p99 = by_time[max(int(audience * 0.99) - 1, 0)] if sent >= audience * 0.99 else None
        last = span["last"] if sent == audience else None
    finally:
        # Measured already: stop at once.
        for worker in workers:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
        provider.terminate()
        provider.wait(10)
    duration = (span["last"] - span["first"]).total_seconds()
    result = {
        "db": args.db,
        "latency_ms": round(args.latency * 1000),
        "clients": args.clients,
        "audience": audience,
        "cap": args.cap,
        "hosts": args.hosts,
        "senders_per_host": args.senders,
        "error_rate": args.error_rate,
        "sent": sent,
        "resolve_seconds": round(resolve_seconds, 2),
        "start_to_first_message_s": round((span["first"] - mailing.start_at).total_seconds(), 2),
        "start_to_99_percent_s": round((p99 - mailing.start_at).total_seconds(), 1) if p99 else None,
        "start_to_100_percent_s": round((last - mailing.start_at).total_seconds(), 1) if last else None,
        "messages_per_second": round(sent / duration) if duration else None,
        "ceiling_bare_client_per_second": round(ceiling_rate),
        # The senders' CPU for each message (the worker's process group, from the mailing's
        # creation to its end): steadier than the rate on a machine whose speed varies.
        "sender_cpu_us_per_message": round(cpu / sent * 1e6) if sent and cpu else None,
        "peak_rss_mb_per_process": sorted(round(kb / 1024) for kb in peak.values()),
    }
    print(json.dumps(result))


def start_provider(args, manage: list[str], env: dict, port: int) -> subprocess.Popen:
    """The gateway's stand-in in its own process, once it answers."""
    provider = subprocess.Popen(
        [*manage, "fake_provider", "--port", str(port), "--token", TOKEN, "--latency", str(args.latency)]
        + ["--error-rate", str(args.error_rate), "--quiet"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    wait_for(f"http://127.0.0.1:{port}/_stats")
    return provider


def start_workers(args, manage: list[str], env: dict, var: Path, hosts: int) -> list[subprocess.Popen]:
    """`hosts` production workers (each in a process group of its own), once their senders beat."""
    log = open(var / f"bench-worker-{args.db}.log", "w")
    workers = [
        subprocess.Popen([*manage, "run_worker"], env=env, stdout=log, stderr=log, start_new_session=True)
        for _ in range(hosts)
    ]
    wait_for_senders(args.senders * hosts)
    return workers


def first_message(args, manage: list[str], env: dict, port: int, var: Path) -> None:
    """From start_at to the first message at the gateway, with everyone in the audience: the
    worker resolves it meanwhile (`--first`)."""
    from datetime import timedelta

    from django.utils import timezone

    from mailer.models import Mailing

    provider = start_provider(args, manage, env, port)
    workers = start_workers(args, manage, env, var, 1)
    try:
        start_at = timezone.now() + timedelta(seconds=3)
        mailing = Mailing.objects.create(
            text="Benchmark: hello!", start_at=start_at, end_at=start_at + timedelta(hours=1)
        )
        stats_url = f"http://127.0.0.1:{port}/_stats"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if json.load(urllib.request.urlopen(stats_url))["accepted"]:
                break
            time.sleep(0.01)
        first = time.time()  # the stand-in has accepted one: it was sent within the last 10 ms
    finally:
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait(30)
        provider.terminate()
        provider.wait(10)
    print(
        json.dumps(
            {
                "db": args.db,
                "clients": args.clients,
                "latency_ms": round(args.latency * 1000),
                "start_to_first_message_s": round(first - mailing.start_at.timestamp(), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
