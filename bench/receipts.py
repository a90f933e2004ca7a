"""Benchmark of delivery receipts (POST /api/v1/gateway/receipts/), taken as production takes them:
the Procfile's `web` line (gunicorn), while the engine sends at full speed (the Procfile's
`worker` line against the gateway stand-in at 0 ms), on SQLite and on PostgreSQL.

    .venv/bin/python bench/receipts.py --db sqlite --runs 3
    .venv/bin/python bench/receipts.py --db postgres --runs 3
    .venv/bin/python bench/receipts.py --db sqlite --mode single --receipts 20000

Each run seeds a finished mailing of --messages sent messages (rows in bulk, as the engine leaves
them), starts a service mailing to --clients clients, and once the engine sends at full speed
fires one receipt per seeded message from a separate process: in batches of 1,000 (--mode batch,
4 requests in flight) or one by one (--mode single, 32 in flight), a tenth of them undelivered.
Every answer must be a 200 that took them all. Meanwhile a staff member saves a client through
the API every 100 ms (a write on the engine's database): its p50/p99/max are printed with the
engine's rate before and during the receipts. Then the senders apply the spool and the mailing's
counts must be exactly the receipts fired. Nothing may log "database is locked".
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from common import (  # bench/common.py
    at_full_speed,
    cpu_seconds,
    free_port,
    lineup,
    logged,
    percentile,
    procfile,
    seeded,
    start,
    start_gateway,
    stop,
    triple,
    wait_for,
    wait_for_senders,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "bench-token"
RECEIPT_TOKEN = "bench-receipts"
NAME = "bench_receipts"
CHUNK = 5000
PHONES = itertools.count(1)  # the staff member's new clients, over every run


# The load generator: a process of its own ------------------------------------------------------


def fire(base: str, bodies: list[bytes], concurrency: int, out) -> None:
    """POST each body to the receipts address, `concurrency` at a time, a connection each (gunicorn's
    sync workers close it after each answer); put (elapsed s, latencies s, problems, CPU s)."""
    host, port = base.removeprefix("http://").split(":")
    head = (
        "POST /api/v1/gateway/receipts/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        "Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
    )

    async def post(body: bytes) -> tuple[int, bytes]:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(head.format(host=f"{host}:{port}", token=RECEIPT_TOKEN, n=len(body)).encode() + body)
            answer = await reader.read()
            writer.close()
            status_line, _, rest = answer.partition(b"\r\n")
            return int(status_line.split()[1]), rest.split(b"\r\n\r\n", 1)[-1]
        except (OSError, ValueError, IndexError) as e:
            return 0, repr(e).encode()

    async def run():
        latencies: list[float] = []
        problems: list[str] = []
        todo = iter(bodies)

        async def one_at_a_time() -> None:
            for body in todo:
                t = time.perf_counter()
                status, answer = await post(body)
                latencies.append(time.perf_counter() - t)
                if status != 200 or b'"unknown":0' not in answer.replace(b" ", b""):
                    problems.append(f"{status} {answer[:200]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, problems

    elapsed, latencies, problems = asyncio.run(run())
    out.put((elapsed, latencies, problems, time.process_time()))


def fire_in_process(base: str, bodies: list[bytes], concurrency: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=fire, args=(base, bodies, concurrency, queue))
    process.start()
    elapsed, latencies, problems, cpu = queue.get()
    process.join()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "elapsed": elapsed,
        "p50": percentile(ms, 0.5),
        "p99": percentile(ms, 0.99),
        "max": ms[-1],
        "problems": problems,
        "load_cpu": cpu,
    }


class StaffWrites(threading.Thread):
    """A staff member saving a client every `every` seconds, each write's time: through the API
    (the web's queue and the database), or, `direct`, with the ORM in this process (the database's
    write lock alone)."""

    def __init__(self, base: str, token: str, every: float = 0.1, direct: bool = False) -> None:
        super().__init__(daemon=True)
        self.base, self.token, self.every, self.direct = base, token, every, direct
        self.times: list[float] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connections

        from mailer.models import Client

        while not self.stopping.is_set():
            phone = f"7958{next(PHONES):07d}"  # no demo client has 958
            t = time.perf_counter()
            try:
                if self.direct:
                    Client.objects.create(phone=phone, tag="bench")
                else:
                    self.post(phone)
            except Exception as e:  # a failed write is reported, whatever it was
                self.errors.append(repr(e)[:200])
            self.times.append(time.perf_counter() - t)
            self.stopping.wait(self.every)
        connections.close_all()

    def post(self, phone: str) -> None:
        request = urllib.request.Request(
            f"{self.base}/api/v1/clients/",
            data=json.dumps({"phone": phone, "tag": "bench"}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


# Data ------------------------------------------------------------------------------------------


def seed_sent(n: int, label: str) -> tuple[int, list[int]]:
    """A finished mailing to the first `n` clients, every message sent: (its id, message ids)."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from mailer.models import (
        Client,
        Mailing,
        MailingCounts,
        MailingKind,
        MailingState,
        Message,
        MessageStatus,
    )

    now = timezone.now()
    mailing = Mailing.objects.create(
        kind=MailingKind.SERVICE,
        text=f"Ваш заказ отправлен ({label})",
        start_at=now - timedelta(minutes=10),
        end_at=now + timedelta(hours=1),
        state=MailingState.FINISHED,
        started_at=now - timedelta(minutes=10),
        finished_at=now - timedelta(minutes=5),
    )
    ids = []
    clients = list(Client.objects.order_by("id").values_list("id", flat=True)[:n])
    for at in range(0, len(clients), CHUNK):
        with transaction.atomic():
            ids += [
                m.pk
                for m in Message.objects.bulk_create(
                    Message(mailing=mailing, client_id=pk, status=MessageStatus.SENT, sent_at=now, attempts=1)
                    for pk in clients[at : at + CHUNK]
                )
            ]
    MailingCounts.reconcile(mailing.pk)  # the bulk insert counted nothing: sent, and per operator
    return mailing.pk, ids


def bodies_for(ids: list[int], per_request: int) -> tuple[list[bytes], int]:
    """The receipts of `ids` (every tenth undelivered), `per_request` to a body; and how many say
    undelivered."""
    at = datetime.now(UTC).isoformat()
    receipts = [
        {"id": i, "status": "undelivered" if n % 10 == 0 else "delivered", "at": at, "error": ""}
        for n, i in enumerate(ids)
    ]
    if per_request == 1:
        return [json.dumps(r).encode() for r in receipts], len(ids[::10])
    chunks = [receipts[a : a + per_request] for a in range(0, len(receipts), per_request)]
    return [json.dumps(chunk).encode() for chunk in chunks], len(ids[::10])


def applied(mailing_id: int, expected: int, seconds: float) -> tuple[int, int, float]:
    """The mailing's (delivered, undelivered) once `expected` receipts are applied (or `seconds`
    have passed), and how long that took."""
    from mailer.models import MailingCounts

    t0 = time.monotonic()
    while True:
        row = MailingCounts.objects.get(mailing_id=mailing_id)
        if row.delivered + row.undelivered >= expected or time.monotonic() - t0 > seconds:
            return row.delivered, row.undelivered, time.monotonic() - t0
        time.sleep(0.2)


# The bench -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mode", choices=["batch", "single", "both"], default="both")
    parser.add_argument("--receipts", type=int, default=50_000, help="receipts fired per run in batches")
    parser.add_argument("--single", type=int, default=10_000, help="receipts fired per run one by one")
    parser.add_argument("--clients", type=int, default=200_000, help="the engine's mailing's audience")
    parser.add_argument("--keep", action="store_true", help="leave the bench database")
    args = parser.parse_args()

    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    spool = var / "bench-receipts-spool"
    shutil.rmtree(spool, ignore_errors=True)
    web_port, gateway_port = free_port(), free_port()
    seeded(
        args.db,
        NAME,
        max(args.clients, args.receipts, args.single),
        **lineup(web_port, gateway_port, TOKEN),
        MAILER_RECEIPT_TOKEN=RECEIPT_TOKEN,
        MAILER_UNDELIVERED_LIMIT="0",  # the bench's clients get receipts run after run
        **({"MAILER_RECEIPT_SPOOL": str(spool)} if args.db == "sqlite" else {}),
    )
    env = dict(os.environ)

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.models import ApiToken
    from accounts.roles import MANAGER, set_role
    from mailer.models import Mailing

    staff = get_user_model().objects.create_user("bench-staff", password="x")
    set_role(staff, MANAGER)
    _token, staff_token = ApiToken.issue(staff, "bench")

    lines = procfile()
    base = f"http://127.0.0.1:{web_port}"
    web_log, worker_log = (
        var / f"bench-receipts-web-{args.db}.log",
        var / f"bench-receipts-worker-{args.db}.log",
    )
    processes = [start(lines["web"], env, web_log)]
    processes.append(start_gateway(env, gateway_port, TOKEN))
    worker = start(lines["worker"], env, worker_log)
    processes.append(worker)
    results: dict[str, list[dict]] = {"batch": [], "single": []}
    failures = []
    try:
        wait_for(f"{base}/healthz")
        wait_for_senders()
        modes = ["batch", "single"] if args.mode == "both" else [args.mode]
        for mode in modes:
            for run in range(args.runs):
                n = args.receipts if mode == "batch" else args.single
                mailing_id, ids = seed_sent(n, f"{mode} {run + 1}")
                bodies, undelivered = bodies_for(ids, 1000 if mode == "batch" else 1)
                big, big_counts = at_full_speed(f"Ваш заказ готов ({mode} {run + 1})", 1, 5000)
                # The engine alone, with the staff member's writes, for a few seconds...
                writes = StaffWrites(base, staff_token)
                locks = StaffWrites(base, staff_token, direct=True)
                writes.start()
                locks.start()
                s0, t0 = big_counts.get().sent, time.monotonic()
                time.sleep(3)
                s1, t1 = big_counts.get().sent, time.monotonic()
                alone_writes, alone_locks = len(writes.times), len(locks.times)
                # ...then the receipts.
                web_cpu = cpu_seconds(processes[0].pid)
                fired = fire_in_process(base, bodies, 4 if mode == "batch" else 32)
                fired["web_cpu"] = cpu_seconds(processes[0].pid) - web_cpu
                # The engine's rate and the staff member's writes "during": from the first receipt
                # fired until the senders have applied the last.
                delivered, not_delivered, took = applied(mailing_id, n, 120)
                s2, t2 = big_counts.get().sent, time.monotonic()
                for thread in (writes, locks):
                    thread.stopping.set()
                    thread.join()
                before = sorted(x * 1000 for x in writes.times[:alone_writes]) or [0.0]
                during = sorted(x * 1000 for x in writes.times[alone_writes:]) or [0.0]
                lock_before = sorted(x * 1000 for x in locks.times[:alone_locks]) or [0.0]
                lock_during = sorted(x * 1000 for x in locks.times[alone_locks:]) or [0.0]
                result = fired | {
                    "rate": n / fired["elapsed"],
                    "engine_alone": (s1 - s0) / (t1 - t0),
                    "engine_during": (s2 - s1) / (t2 - t1),
                    "write_before_p99": percentile(before, 0.99),
                    "write_p50": percentile(during, 0.5),
                    "write_p99": percentile(during, 0.99),
                    "write_max": during[-1],
                    "lock_before_p99": percentile(lock_before, 0.99),
                    "lock_p99": percentile(lock_during, 0.99),
                    "writes": len(during),
                    "applied_in": took,
                }
                results[mode].append(result)
                if (delivered, not_delivered) != (n - undelivered, undelivered):
                    failures.append(
                        f"{mode} run {run + 1}: applied {delivered} + {not_delivered}, "
                        f"fired {n - undelivered} + {undelivered}"
                    )
                if fired["problems"]:
                    failures.append(
                        f"{mode} run {run + 1}: {len(fired['problems'])} bad answers: {fired['problems'][:3]}"
                    )
                if writes.errors or locks.errors:
                    failures.append(
                        f"{mode} run {run + 1}: staff writes failed: {(writes.errors + locks.errors)[:3]}"
                    )
                print(
                    f"{args.db} {mode} run {run + 1}: {result['rate']:,.0f} receipts/s, request p50 "
                    f"{fired['p50']:.1f} ms, p99 {fired['p99']:.1f} ms; engine {result['engine_alone']:,.0f} "
                    f"msg/s before, {result['engine_during']:,.0f} until applied; staff writes p99 before "
                    f"{result['write_before_p99']:.0f} ms, then p50 "
                    f"{result['write_p50']:.0f} ms, p99 {result['write_p99']:.0f} ms, max "
                    f"{result['write_max']:.0f} ms ({result['writes']}); the database's own: p99 "
                    f"{result['lock_before_p99']:.0f} ms before, {result['lock_p99']:.0f} ms after; applied {delivered + not_delivered:,} "
                    f"of {n:,} within {took:.1f} s after; CPU: web {fired['web_cpu']:.1f} s, load generator "
                    f"{fired['load_cpu']:.1f} s in {fired['elapsed']:.1f} s",
                    flush=True,
                )
                Mailing.objects.filter(pk=big.pk).update(end_at=timezone.now())  # the next run starts afresh
    finally:
        for process in reversed(processes):
            stop(process)
    locked = logged([web_log, worker_log], "database is locked")
    errors = logged([web_log, worker_log], " ERROR ")

    print()
    print(
        f"{args.db}, min / median / max of {args.runs} runs, the engine sending to {args.clients:,} clients:"
    )
    print()
    print(
        "| mode | receipts/s | request p99 ms | engine msg/s before | engine msg/s until applied "
        "| staff write p99 ms before | staff write p99 ms | staff write max ms "
        "| database write p99 ms before | database write p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, rows in results.items():
        if rows:
            print(
                f"| {mode} | {triple([r['rate'] for r in rows], '{:,.0f}')} | {triple([r['p99'] for r in rows], '{:.1f}')} "
                f"| {triple([r['engine_alone'] for r in rows], '{:,.0f}')} | {triple([r['engine_during'] for r in rows], '{:,.0f}')} "
                f"| {triple([r['write_before_p99'] for r in rows], '{:.0f}')} | {triple([r['write_p99'] for r in rows], '{:.0f}')} | {triple([r['write_max'] for r in rows], '{:.0f}')} "
                f"| {triple([r['lock_before_p99'] for r in rows], '{:.0f}')} | {triple([r['lock_p99'] for r in rows], '{:.0f}')} |"
            )
    print()
    print(f'"database is locked": {len(locked)} lines; ERROR lines: {len(errors)}')
    for line in (locked + errors)[:10]:
        print("  ", line[:300])
    for failure in failures:
        print("FAILED:", failure)
    if args.db == "postgres" and not args.keep:
        from django.db import connections

        connections.close_all()
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", f"mailer_{NAME}"], check=True
        )
    sys.exit(1 if failures or locked else 0)


if __name__ == "__main__":
    main()
