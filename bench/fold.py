"""What counting clicks costs a sender (links.fold, each tick), measured in one process: the work a
burst of clicks gives the senders besides sending.

    .venv/bin/python bench/fold.py --db sqlite
    .venv/bin/python bench/fold.py --db postgres

Seeds a finished mailing of --links messages with a link each (as bench/clicks.py does), then,
--rounds times: writes down --clicks clicks at random codes of it (SpooledClick rows, as the web
does with MAILER_CLICK_SPOOL=database) and folds them, timed (wall and this process's CPU; the
database server's work shows in the wall time). The first round makes every clicker; later ones
mostly add to clickers already there. The mailing's counts must come out exact.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from clicks import seed_links
from common import seeded  # bench/common.py: a script's folder is on its path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--links", type=int, default=20_000)
    parser.add_argument("--clicks", type=int, default=40_000, help="clicks folded per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    seeded(args.db, "bench_fold", args.links, MAILER_CLICK_SPOOL="database")

    from django.utils import timezone

    from mailer import links
    from mailer.models import MailingCounts, SpooledClick

    mailing, made = seed_links(args.links, "fold")
    rng = random.Random(25)
    wall, cpu, clickers = [], [], set()
    for n in range(args.rounds):
        now = timezone.now()
        codes = [rng.choice(made) for _ in range(args.clicks)]
        clickers |= {phone for _code, _url, phone in codes}
        SpooledClick.objects.bulk_create((SpooledClick(code=c[0], at=now) for c in codes), batch_size=5000)
        t, c = time.perf_counter(), time.process_time()
        folded = links.fold()
        wall.append((time.perf_counter() - t) / folded * 1e6)
        cpu.append((time.process_time() - c) / folded * 1e6)
        print(
            f"round {n + 1}: {folded:,} clicks, {wall[-1]:.0f} µs a click, {cpu[-1]:.0f} µs of CPU",
            flush=True,
        )
    counts = MailingCounts.objects.get(mailing=mailing)
    expected = (args.clicks * args.rounds, len(clickers))
    assert (counts.clicks, counts.clickers) == expected, ((counts.clicks, counts.clickers), expected)
    print(
        f"\n{args.db}: µs a click, min / median / max of {args.rounds} rounds: "
        f"wall {min(wall):.0f} / {statistics.median(wall):.0f} / {max(wall):.0f}, "
        f"CPU of the sender {min(cpu):.0f} / {statistics.median(cpu):.0f} / {max(cpu):.0f}; counts exact"
    )


if __name__ == "__main__":
    main()
