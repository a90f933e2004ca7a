"""What MAILER_FREQUENCY_CAP costs the engine per message, measured in one process, where a
machine whose speed swings by half between runs (as this one does) still gives steady figures: the
fastest of many repetitions of the cap's own work on a real round, beside the fastest claim of
that round (the work every message costs anyway).

    .venv/bin/python bench/frequency.py --db sqlite
    .venv/bin/python bench/frequency.py --db postgres --cap 2/day,5/week

Seeds --clients clients (the demo's: six in seven with consent) with --history advertising
messages each already sent this week, starts an advertising mailing to them, and claims one round
(MAILER_BATCH_SIZE messages) as a sender does. Then, --repeat times each: the round's claim
(undone each time), Tally.load for the round's clients, and Tally.admit for each of its messages.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

from common import seeded  # bench/common.py: a script's folder is on its path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fastest(repeat: int, work) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--history", type=int, default=3, help="advertising sent to each client this week")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--cap", default="5/day", help="MAILER_FREQUENCY_CAP")
    args = parser.parse_args()
    seeded(
        args.db,
        "bench_frequency",
        args.clients,
        MAILER_QUIET_HOURS="",
        MAILER_FREQUENCY_CAP=args.cap,
        LOG_LEVEL="WARNING",
    )
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from engine import frequency, scheduling
    from engine.delivery import Deliverer, EngineConfig
    from engine.sending import Gateway
    from mailer.models import Mailing, MailingState, Message, MessageStatus, frequency_cap

    now = timezone.now()
    # This week's history: --history finished advertising mailings, sent to everyone an hour ago.
    for n in range(args.history):
        past = Mailing.objects.create(text=f"past {n}", start_at=now - timedelta(hours=2), end_at=now)
        scheduling.resolve_audience(past, now - timedelta(hours=2))
        past.messages.update(status=MessageStatus.SENT, sent_at=now - timedelta(hours=1))
        Mailing.objects.filter(pk=past.pk).update(state=MailingState.FINISHED)
    mailing = Mailing.objects.create(text="bench", start_at=now, end_at=now + timedelta(hours=1))
    scheduling.tick()
    now = timezone.now()  # its messages are due
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum soon would: the planner knows the tables
    conf = EngineConfig.from_settings()
    deliverer = Deliverer("bench", conf, Gateway("http://127.0.0.1:9", "t", conf.concurrency))
    cap = frequency_cap()

    def claim():
        with transaction.atomic():
            lease, claimed = deliverer.claim(conf.batch_size, now)
            transaction.set_rollback(True)
        return lease, claimed

    lease, claimed = deliverer.claim(conf.batch_size, now)  # kept: Tally.load sees it as a sender would
    clients = {c.client_id for c in claimed}
    n = len(claimed)

    def admit_all():
        tally = frequency.Tally(cap)
        for c in claimed:
            tally.admit(c.client_id, c.tz, now)

    if "lease" not in inspect.signature(frequency.Tally.load).parameters:
        lease = {c.id for c in claimed}  # the version before 2026-12-05 took the round's ids
    tally = frequency.Tally.load(cap, clients, lease, now)
    assert sum(len(v) for v in tally.sent.values()) == args.history * len(clients), "the history is counted"
    claim_s = fastest(args.repeat, claim)
    load_s = fastest(args.repeat, lambda: frequency.Tally.load(cap, clients, lease, now))
    admit_s = fastest(args.repeat, admit_all)
    per = 1e6 / n
    print(
        f"{args.db}: {Message.objects.count():,} messages, a round of {n}; fastest of {args.repeat}, "
        f"µs per message: claim {claim_s * per:.1f}, Tally.load {load_s * per:.1f}, "
        f"Tally.admit {admit_s * per:.1f}; the cap = {(load_s + admit_s) / claim_s:.0%} of the claim"
    )
    deliverer.close()
    Mailing.objects.filter(pk=mailing.pk).delete()


if __name__ == "__main__":
    main()
