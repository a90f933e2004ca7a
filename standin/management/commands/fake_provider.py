from __future__ import annotations

import asyncio
import time

from django.core.management.base import BaseCommand

from standin.gateway import Behaviour, FakeProvider, parse_shares


class Command(BaseCommand):
    help = "Run the local stand-in of the SMS gateway (POST /v1/send/{id}), optionally misbehaving."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--token", default="", help="Bearer token to require (empty: any).")
        parser.add_argument("--latency", type=float, default=0.0, help="Seconds added to every answer.")
        parser.add_argument(
            "--jitter", type=float, default=0.0, help="Up to this many seconds more, at random."
        )
        parser.add_argument("--error-rate", type=float, default=0.0, help="Share of 500/503 answers (0-1).")
        parser.add_argument("--throttle-rate", type=float, default=0.0, help="Share of 429 answers (0-1).")
        parser.add_argument("--garbage-rate", type=float, default=0.0, help="Share of 200s with a bad body.")
        parser.add_argument("--drop-rate", type=float, default=0.0, help="Share of dropped connections.")
        parser.add_argument(
            "--down-after", type=float, default=0.0, help="Go down this many seconds after start."
        )
        parser.add_argument("--down-for", type=float, default=0.0, help="...for this many seconds.")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--receipts-url",
            default="",
            help="Post delivery receipts here (the product's /api/v1/gateway/receipts/).",
        )
        parser.add_argument(
            "--receipts-token", default="", help="...with this bearer token (MAILER_RECEIPT_TOKEN)."
        )
        parser.add_argument(
            "--receipts-delay", type=float, default=1.0, help="Seconds from a message to its receipt."
        )
        parser.add_argument(
            "--undelivered",
            type=parse_shares,
            default={},
            help="Share of receipts that say undelivered, per operator code: 912=0.5,*=0.02.",
        )
        parser.add_argument("--quiet", action="store_true", help="Don't log every message received.")

    def handle(self, *args, host, port, token, down_after, down_for, quiet, **opts):
        behaviour = Behaviour(
            token=token,
            latency=opts["latency"],
            jitter=opts["jitter"],
            error_rate=opts["error_rate"],
            throttle_rate=opts["throttle_rate"],
            garbage_rate=opts["garbage_rate"],
            drop_rate=opts["drop_rate"],
            seed=opts["seed"],
            receipts_url=opts["receipts_url"],
            receipts_token=opts["receipts_token"],
            receipts_delay=opts["receipts_delay"],
            undelivered=opts["undelivered"],
        )
        provider = FakeProvider(behaviour, log_each=not quiet)

        async def main() -> None:
            if down_for:
                asyncio.get_running_loop().call_later(
                    down_after, lambda: setattr(behaviour, "down_until", time.monotonic() + down_for)
                )
            await provider.serve_forever(host, port)

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
