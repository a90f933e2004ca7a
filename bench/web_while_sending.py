"""Benchmark: the staff's web requests while the engine sends at full speed (issue 27, part 2), on
SQLite and on PostgreSQL, as production runs: the Procfile's `web` line (gunicorn) and `worker`
line, against the gateway stand-in at 0 ms.

    .venv/bin/python bench/web_while_sending.py --db sqlite --runs 3
    .venv/bin/python bench/web_while_sending.py --db postgres --runs 3

Each run sends two service mailings to the --clients seeded clients, one after the other. The
first goes alone: the engine's rate over --alone seconds at full speed. During the second, four
staff members (threads of this process, each with its own session) for --seconds, again and
again: save a new client through the API (a write), open Statistics and the mailings page (two
reads), one round after another or (--every) a round every so many seconds. Printed: each kind's p50/p99/max, and the engine's rate alone and during the load. Every
request must succeed, and nothing may log "database is locked".
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from common import (  # bench/common.py
    at_full_speed,
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
NAME = "bench_web"
STAFF = 4
PASSWORD = "bench-password-1"
PAGES = ("/statistics/", "/mailings/")
PHONES = itertools.count(1)  # the staff's new clients, over every run


class Staff(threading.Thread):
    """One staff member: a browser session for the pages, an API token for the writes."""

    def __init__(self, base: str, username: str, token: str, every: float) -> None:
        super().__init__(daemon=True)
        self.base, self.username, self.token, self.every = base, username, token, every
        self.writes: list[float] = []
        self.reads: list[float] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        page = session.get(f"{self.base}/accounts/login/", timeout=30)
        login = session.post(
            f"{self.base}/accounts/login/",
            data={
                "username": self.username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
                "next": "/",
            },
            timeout=30,
        )
        if "sessionid" not in session.cookies:
            self.errors.append(f"login refused: HTTP {page.status_code}, then {login.status_code}")
            return
        while not self.stopping.is_set():
            began = time.monotonic()
            phone = f"7958{next(PHONES):07d}"  # no demo client has 958
            self.timed(
                self.writes,
                "POST /api/v1/clients/",
                lambda phone=phone: session.post(
                    f"{self.base}/api/v1/clients/",
                    json={"phone": phone, "tag": "bench"},
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=30,
                ),
                201,
            )
            for page in PAGES:
                self.timed(self.reads, page, lambda page=page: session.get(self.base + page, timeout=30), 200)
            self.stopping.wait(max(self.every - (time.monotonic() - began), 0))

    def timed(self, into: list[float], what: str, request, status: int) -> None:
        t = time.perf_counter()
        try:
            response = request()
            if response.status_code != status:
                self.errors.append(f"{what}: HTTP {response.status_code}")
        except requests.RequestException as e:
            self.errors.append(f"{what}: {e!r}"[:200])
        into.append((time.perf_counter() - t) * 1000)


def rate(counts, seconds: float, during=None) -> tuple[float, bool]:
    """Messages per second over `seconds`, and whether the mailing still sent at the end (it must:
    a rate measured past its last message would be too low)."""
    s0, t0 = counts.get().sent, time.monotonic()
    (during or time.sleep)(seconds)
    row = counts.get()
    return (row.sent - s0) / (time.monotonic() - t0), row.pending > 0


def load(members: list[Staff], seconds: float) -> None:
    for member in members:
        member.start()
    time.sleep(seconds)
    for member in members:
        member.stopping.set()
    for member in members:
        member.join(60)


def finish(mailing) -> None:
    """End the mailing now and wait until the engine has settled it, so the next run starts clean."""
    from django.utils import timezone

    from mailer.models import Mailing, MailingState

    Mailing.objects.filter(pk=mailing.pk).update(end_at=timezone.now())
    deadline = time.monotonic() + 120
    while Mailing.objects.get(pk=mailing.pk).state != MailingState.FINISHED and time.monotonic() < deadline:
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--alone", type=float, default=10, help="seconds the engine is measured alone")
    parser.add_argument("--seconds", type=float, default=20, help="seconds of the staff's load")
    parser.add_argument(
        "--every", type=float, default=0, help="seconds between a staff member's rounds; 0: none"
    )
    args = parser.parse_args()

    web_port, gateway_port = free_port(), free_port()
    seeded(args.db, NAME, args.clients, **lineup(web_port, gateway_port, TOKEN))
    env = dict(os.environ)
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken
    from accounts.roles import MANAGER, set_role

    staff = []
    for n in range(STAFF):
        user = get_user_model().objects.create_user(f"bench-staff-{n}", password=PASSWORD)
        set_role(user, MANAGER)
        staff.append((user.username, ApiToken.issue(user, "bench")[1]))

    var = ROOT / "var"
    web_log, worker_log = var / f"bench-web-web-{args.db}.log", var / f"bench-web-worker-{args.db}.log"
    lines = procfile()
    base = f"http://127.0.0.1:{web_port}"
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], env=env, check=True)  # the pages' files
    processes = [start(lines["web"], env, web_log)]
    processes.append(start_gateway(env, gateway_port, TOKEN))
    processes.append(start(lines["worker"], env, worker_log))
    results, failures = [], []
    try:
        wait_for(f"{base}/healthz")
        wait_for_senders()
        for run in range(1, args.runs + 1):
            mailing, counts = at_full_speed(f"Ваш заказ готов (alone {run})", 0, 3000)
            alone, sending = rate(counts, args.alone)
            finish(mailing)
            if not sending:
                failures.append(f"run {run}: the mailing ended within the alone window: more --clients")

            mailing, counts = at_full_speed(f"Ваш заказ готов (load {run})", 0, 3000)
            members = [Staff(base, username, token, args.every) for username, token in staff]
            during, sending = rate(
                counts, args.seconds, lambda seconds, members=members: load(members, seconds)
            )
            finish(mailing)
            if not sending:
                failures.append(f"run {run}: the mailing ended within the load: more --clients")
            writes = sorted(x for m in members for x in m.writes)
            reads = sorted(x for m in members for x in m.reads)
            errors = [e for m in members for e in m.errors]
            if errors or not writes:
                failures.append(f"run {run}: {len(errors)} failed requests: {errors[:3]}")
            writes, reads = writes or [0.0], reads or [0.0]
            result = {
                "alone": alone,
                "during": during,
                "writes": len(writes),
                "reads": len(reads),
                "write_p50": percentile(writes, 0.5),
                "write_p99": percentile(writes, 0.99),
                "write_max": writes[-1],
                "read_p50": percentile(reads, 0.5),
                "read_p99": percentile(reads, 0.99),
                "read_max": reads[-1],
            }
            results.append(result)
            print(
                f"{args.db} run {run}: engine {alone:,.0f} msg/s alone, {during:,.0f} during the load "
                f"({during / alone:.0%}); {len(writes)} writes p50 {result['write_p50']:.0f} ms, p99 "
                f"{result['write_p99']:.0f} ms, max {result['write_max']:.0f} ms; {len(reads)} reads p50 "
                f"{result['read_p50']:.0f} ms, p99 {result['read_p99']:.0f} ms, max {result['read_max']:.0f} ms",
                flush=True,
            )
    finally:
        for process in reversed(processes):
            stop(process)
    locked = logged([web_log, worker_log], "database is locked")
    errors = logged([web_log, worker_log], " ERROR ")

    def col(key: str, fmt: str = "{:,.0f}") -> str:
        return triple([r[key] for r in results], fmt)

    print()
    print(
        f"{args.db}, min / median / max of {len(results)} runs, {STAFF} staff members "
        f"({f'a round every {args.every:g} s' if args.every else 'one round after another'}), "
        f"{args.clients:,} clients:"
    )
    print()
    print("| | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    print(
        f"| web writes (POST /api/v1/clients/) | {col('write_p50')} | {col('write_p99')} | {col('write_max')} |"
    )
    print(f"| web reads (Statistics, mailings) | {col('read_p50')} | {col('read_p99')} | {col('read_max')} |")
    print()
    share = triple([r["during"] / r["alone"] * 100 for r in results], "{:.0f}%")
    print(f"engine msg/s alone {col('alone')}, during the load {col('during')} ({share} of alone)")
    for line in [*locked[:5], *errors[:5]]:
        print("LOG:", line)
    if failures or locked:
        print("FAILED:", *failures, f"{len(locked)} 'database is locked' lines" if locked else "", sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main()
