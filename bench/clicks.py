"""Benchmark of clicks on the short links (GET /l/<code>), served as production serves them: the
Procfile's `web` line (gunicorn, sync workers), with and without the engine sending at full speed
(the Procfile's `worker` line against the gateway stand-in at 0 ms).

    .venv/bin/python bench/clicks.py --db sqlite --runs 3
    .venv/bin/python bench/clicks.py --db postgres --runs 3
    .venv/bin/python bench/clicks.py --db sqlite --clicks 20000 --concurrency 32 --phase alone

Each run seeds a finished mailing whose messages each have a link of their own (Mailing, Message
and Link rows in bulk, as the engine leaves them; every link's address is its own, so a wrong
redirect shows), then fires --clicks GETs at random codes of it (some clients click twice) from a
separate process (--client: a bare asyncio stream or aiohttp; --concurrency requests in flight), timing each request. Every answer
must be a 302 to its link's address. Then the clicks are counted (on SQLite the spool is folded: by
the bench alone, by the worker's senders while the engine runs) and the mailing's counts must be
exactly the clicks fired and the distinct clients who clicked.

The "engine" phase first starts a service mailing with a link to all --clients clients and fires
the clicks once the engine is sending; the engine's rate while the clicks come is measured too.
Nothing may log "database is locked" (gunicorn's and the worker's output are searched).

The load generator shares the machine's cores with gunicorn, the database and the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (  # bench/common.py
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
PG_NAME = "mailer_bench_clicks"
PG = ["-h", "127.0.0.1", "-U", "postgres"]
CHUNK = 5000


# The load generator: a process of its own ------------------------------------------------------


def fire(base: str, clicks: list[tuple[str, str]], concurrency: int, out, client: str = "raw") -> None:
    """GET each click's /l/<code>, `concurrency` at a time; put (elapsed s, latencies s, problems).

    `client` "raw" writes the request and reads the answer on a bare asyncio stream (a connection
    each, as gunicorn's sync workers close it after each answer), checking its status line and
    Location header; "aiohttp" goes through aiohttp's client, which costs several times more CPU
    per request on the cores the server needs too."""

    async def run():
        latencies: list[float] = []
        problems: list[str] = []
        todo = iter(clicks)
        async with getter(base, client, concurrency) as get:

            async def one_at_a_time() -> None:
                for code, url in todo:
                    t = time.perf_counter()
                    status, location = await get(code)
                    latencies.append(time.perf_counter() - t)
                    if (status, location) != (302, url):
                        problems.append(f"/l/{code}: {status} {location}")

            started = time.perf_counter()
            await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
            return time.perf_counter() - started, latencies, problems

    elapsed, latencies, problems = asyncio.run(run())
    out.put((elapsed, latencies, problems, time.process_time()))


@contextlib.asynccontextmanager
async def getter(base: str, client: str, concurrency: int):
    """`get(code)`: GET /l/<code>, as (status, Location); (0, the error) when it fails."""
    if client == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=concurrency)  # keep-alive where the server allows it
        async with aiohttp.ClientSession(connector=connector) as session:

            async def get(code: str) -> tuple[int, str | None]:
                try:
                    async with session.get(f"{base}/l/{code}", allow_redirects=False) as response:
                        await response.read()
                        return response.status, response.headers.get("Location")
                except aiohttp.ClientError as e:
                    return 0, repr(e)

            yield get
        return
    host, port = base.removeprefix("http://").split(":")
    request = "GET /l/{} HTTP/1.1\r\nHost: " + f"{host}:{port}" + "\r\nConnection: close\r\n\r\n"

    async def get(code: str) -> tuple[int, str | None]:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request.format(code).encode())
            answer = await reader.read()  # to the end: the server closes the connection
            writer.close()
            head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
            return int(head[0].split()[1]), headers.get("Location")
        except (OSError, ValueError, IndexError) as e:
            return 0, repr(e)

    yield get


def fire_in_process(base: str, clicks: list[tuple[str, str]], concurrency: int, client: str) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=fire, args=(base, clicks, concurrency, queue, client))
    process.start()
    elapsed, latencies, problems, cpu = queue.get()
    process.join()
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return {
        "rate": len(clicks) / elapsed,
        "p50": percentile(ms, 0.5),
        "p99": percentile(ms, 0.99),
        "max": ms[-1],
        "problems": problems,
        "elapsed": elapsed,
        "load_cpu": cpu,
    }


# Data ------------------------------------------------------------------------------------------


def seed_links(n: int, label: str):
    """A finished mailing to the first `n` clients, each message with a link of its own, as the
    engine leaves it: Mailing, Message (sent) and Link rows in bulk. Returns (mailing, links) with
    links as [(code, url, phone)]."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from mailer import links
    from mailer.models import (
        Client,
        Link,
        LinkKind,
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
        text="Ваш заказ: https://shop.example/order",
        start_at=now - timedelta(minutes=10),
        end_at=now + timedelta(hours=1),
        state=MailingState.FINISHED,
        started_at=now - timedelta(minutes=10),
        finished_at=now - timedelta(minutes=5),
    )
    made = []
    clients = Client.objects.order_by("id").values_list("id", "phone")[:n]
    batch = []

    def flush(batch):
        with transaction.atomic():
            messages = Message.objects.bulk_create(
                Message(mailing=mailing, client_id=pk, status=MessageStatus.SENT, sent_at=now, attempts=1)
                for pk, _phone in batch
            )
            rows = [
                Link(
                    code=links.new_code(),
                    kind=LinkKind.CLICK,
                    mailing=mailing,
                    message_id=message.pk,
                    client_id=pk,
                    phone=phone,
                    url=f"https://shop.example/order/{message.pk}",
                )
                for message, (pk, phone) in zip(messages, batch, strict=True)
            ]
            Link.objects.bulk_create(rows)
        made.extend((row.code, row.url, row.phone) for row in rows)

    # Read whole first: a SQLite read left open across the batches' writes fails them ("database
    # is locked", at once) as soon as the engine's senders have written since it began.
    for row in list(clients):
        batch.append(row)
        if len(batch) == CHUNK:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    MailingCounts.objects.filter(mailing=mailing).update(sent=len(made), first_sent_at=now, last_sent_at=now)
    return mailing, made


def pick(made: list[tuple[str, str, str]], n: int, rng: random.Random):
    """`n` clicks on random links (with replacement: some clients click twice or more)."""
    chosen = [rng.choice(made) for _ in range(n)]
    return [(code, url) for code, url, _phone in chosen], len({phone for _c, _u, phone in chosen})


def counted(mailing_id: int, clicks: int, seconds: float, fold: bool) -> tuple[int, int]:
    """The mailing's (clicks, clickers) once `clicks` are counted or `seconds` have passed; with
    `fold`, the bench folds the spool itself (no worker running)."""
    from mailer import links, spool
    from mailer.models import MailingCounts

    deadline = time.monotonic() + seconds
    while True:
        if fold:
            links.fold(now=time.time() + 2 * spool.SETTLE)  # sets the files aside...
            links.fold(now=time.time() + 2 * spool.SETTLE)  # ...and counts them
        row = MailingCounts.objects.get(mailing_id=mailing_id)
        if row.clicks >= clicks or time.monotonic() > deadline:
            return row.clicks, row.clickers
        time.sleep(0.5)


# The bench -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=20_000, help="clicks fired per run")
    parser.add_argument("--links", type=int, default=20_000, help="links of the clicked mailing")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--clients", type=int, default=100_000, help="the engine's mailing's audience")
    parser.add_argument("--phase", choices=["alone", "engine", "both"], default="both")
    parser.add_argument("--keep", action="store_true", help="leave the bench database")
    parser.add_argument(
        "--client", choices=["raw", "aiohttp"], default="raw", help="the load generator's HTTP client (fire)"
    )
    args = parser.parse_args()

    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    spool = var / "bench-clicks-spool"
    shutil.rmtree(spool, ignore_errors=True)
    web_port, gateway_port = free_port(), free_port()
    seeded(
        args.db,
        PG_NAME.removeprefix("mailer_"),
        max(args.clients, args.links),
        **lineup(web_port, gateway_port, TOKEN),
        **({"MAILER_CLICK_SPOOL": str(spool)} if args.db == "sqlite" else {}),
    )
    env = dict(os.environ)
    from datetime import timedelta

    from django.utils import timezone

    from mailer.models import Mailing, MailingCounts, MailingKind, MailingState

    lines = procfile()
    base = f"http://127.0.0.1:{web_port}"
    web_log, worker_log = var / f"bench-clicks-web-{args.db}.log", var / f"bench-clicks-worker-{args.db}.log"
    web = start(lines["web"], env, web_log)
    processes = [web]
    results: dict[str, list[dict]] = {"alone": [], "engine": []}
    rng = random.Random(25)
    failures = []
    try:
        wait_for(f"{base}/healthz")
        phases = ["alone", "engine"] if args.phase == "both" else [args.phase]
        for phase in phases:
            if phase == "engine":
                processes.append(start_gateway(env, gateway_port, TOKEN))
                worker = start(lines["worker"], env, worker_log)
                processes.append(worker)
                wait_for_senders()
            for run in range(args.runs):
                mailing, made = seed_links(args.links, f"{phase} {run + 1}")
                clicks, people = pick(made, args.clicks, rng)
                result = {}
                if phase == "engine":
                    start_at = timezone.now() + timedelta(seconds=2)
                    big = Mailing.objects.create(
                        kind=MailingKind.SERVICE,
                        text="Ваш заказ готов: https://shop.example/ready",
                        start_at=start_at,
                        end_at=start_at + timedelta(hours=1),
                    )
                    big_counts = MailingCounts.objects.filter(mailing=big)
                    deadline = time.monotonic() + 120
                    while big_counts.get().sent < 5000 and time.monotonic() < deadline:
                        time.sleep(0.1)  # the engine is at full speed
                    sent_before, t0 = big_counts.get().sent, time.monotonic()
                web_cpu = cpu_seconds(web.pid)
                fired = fire_in_process(base, clicks, args.concurrency, args.client)
                fired["web_cpu"] = cpu_seconds(web.pid) - web_cpu
                if phase == "engine":
                    sent_after, t1 = big_counts.get().sent, time.monotonic()
                    result["engine"] = (sent_after - sent_before) / (t1 - t0)
                    result["engine_sent_during"] = sent_after - sent_before
                    audience = args.clients
                    done = sent_after >= audience
                    result["engine_finished_during"] = done
                got = counted(mailing.pk, len(clicks), 60, fold=phase == "alone")
                if phase == "engine":
                    deadline = time.monotonic() + 300
                    while time.monotonic() < deadline:
                        big.refresh_from_db()
                        if big.state == MailingState.FINISHED:
                            break
                        time.sleep(0.5)
                result.update(fired, clicks=got[0], clickers=got[1], fired=len(clicks), people=people)
                if got != (len(clicks), people):
                    failures.append(f"{phase} run {run + 1}: counted {got}, fired {(len(clicks), people)}")
                if fired["problems"]:
                    failures.append(
                        f"{phase} run {run + 1}: {len(fired['problems'])} bad answers, e.g. "
                        f"{fired['problems'][:3]}"
                    )
                results[phase].append(result)
                engine = f", engine {result['engine']:,.0f} msg/s" if "engine" in result else ""
                print(
                    f"{args.db} {phase} run {run + 1}: {fired['rate']:,.0f} redirects/s, p50 {fired['p50']:.1f} ms, "
                    f"p99 {fired['p99']:.1f} ms, max {fired['max']:.0f} ms{engine}; counted {got[0]:,} clicks "
                    f"of {len(clicks):,}, {got[1]:,} clickers of {people:,}; CPU during the clicks: "
                    f"web {fired['web_cpu']:.1f} s, load generator {fired['load_cpu']:.1f} s in {fired['elapsed']:.1f} s",
                    flush=True,
                )
    finally:
        for process in reversed(processes):
            stop(process)
    locked = logged([web_log, worker_log], "database is locked")
    errors = logged([web_log, worker_log], " ERROR ")

    print()
    print(
        f"{args.db}, {args.clicks:,} clicks on {args.links:,} links, {args.concurrency} in flight, "
        f"min / median / max of {args.runs} runs:"
    )
    print()
    print("| phase | redirects/s | p50 ms | p99 ms | max ms | engine msg/s during the clicks |")
    print("|---|---:|---:|---:|---:|---:|")
    for phase, rows in results.items():
        if rows:
            print(
                f"| {phase} | {triple([r['rate'] for r in rows], '{:,.0f}')} | {triple([r['p50'] for r in rows], '{:.1f}')} "
                f"| {triple([r['p99'] for r in rows], '{:.1f}')} | {triple([r['max'] for r in rows], '{:.0f}')} "
                f"| {triple([r['engine'] for r in rows if 'engine' in r], '{:,.0f}')} |"
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
        subprocess.run(["dropdb", *PG, "--if-exists", PG_NAME], check=True)
    sys.exit(1 if failures or locked else 0)


if __name__ == "__main__":
    main()
