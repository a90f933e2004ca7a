"""Profile the engine's rounds in one process (cProfile), for quick iterations on its hot path.

.venv/bin/python bench/profile_round.py [--clients 5000] [--db sqlite|postgres] [--log-level INFO]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

from common import seeded  # bench/common.py: a script's folder is on its path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--log-level", default="INFO", help="INFO writes a line per message, as in production"
    )
    parser.add_argument(
        "--show", default="", help="also show the functions this regex matches, e.g. tally|admit"
    )
    args = parser.parse_args()
    seeded(args.db, "profile", args.clients, LOG_LEVEL=args.log_level)
    from datetime import timedelta

    from django.utils import timezone

    from engine import scheduling
    from engine.delivery import Deliverer, EngineConfig
    from engine.sending import Gateway
    from mailer.models import Mailing, Message
    from standin.gateway import Behaviour, FakeProvider

    fake = FakeProvider(Behaviour(token="t")).start_in_thread()
    now = timezone.now()
    Mailing.objects.create(text="profile", start_at=now, end_at=now + timedelta(hours=1))
    scheduling.tick()
    conf = EngineConfig.from_settings()
    deliverer = Deliverer("profile", conf, Gateway(fake.url, "t", conf.concurrency))
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    while deliverer.run_batch():
        pass
    profile.disable()
    deliverer.close()
    seconds = time.perf_counter() - start
    print(
        f"{Message.objects.filter(status='sent').count()} sent in {seconds:.2f}s "
        f"= {args.clients / seconds:.0f}/s in one process (stand-in in a thread of the same process)"
    )
    pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    if args.show:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.show)


if __name__ == "__main__":
    main()
