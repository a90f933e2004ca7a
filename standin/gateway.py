"""A local stand-in of the SMS gateway, for the demo, the tests and the benchmark.

It speaks the gateway's contract: `POST /v1/send/{msgId}` with `Authorization: Bearer <token>` and
a JSON body `{"id": int, "phone": int, "text": str}`, answering `200 {"code": 0, "message": "OK"}`.
Switches make it misbehave the ways the real one may: latency, 5xx and 429 answers, garbage 200s,
dropped connections and a down period (connections refused). With a receipts address it posts
delivery receipts back to the product, some undelivered per operator code (`Behaviour`).

It is a small asyncio HTTP/1.1 server with keep-alive rather than a framework, so that on a
2-core machine it costs little CPU next to the workers it serves (see docs/benchmarks.md).
`GET /_stats` answers its counters as JSON.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

logger = logging.getLogger("mailer.fake_provider")

OK_BODY = b'{"code": 0, "message": "OK"}'
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Behaviour:
    token: str = ""
    latency: float = 0.0  # seconds added to every answer
    jitter: float = 0.0  # up to this many seconds more, at random
    error_rate: float = 0.0  # share of 500/503 answers
    throttle_rate: float = 0.0  # share of 429 answers (with Retry-After: 1)
    garbage_rate: float = 0.0  # share of 200 answers whose body is not the contract's JSON
    drop_rate: float = 0.0  # share of requests whose connection is closed with no answer
    down_until: float = 0.0  # time.monotonic() until which connections are refused
    seed: int | None = None
    # Delivery receipts, posted to the product as a real gateway would (mailer/receipts.py): where,
    # with which token, how long after the message, and per operator code (or "*" for the rest)
    # the share that comes back undelivered.
    receipts_url: str = ""
    receipts_token: str = ""
    receipts_delay: float = 1.0
    undelivered: dict[str, float] = field(default_factory=dict)

    def undelivered_share(self, phone: int) -> float:
        code = str(phone)[1:4]
        return self.undelivered.get(code, self.undelivered.get("*", 0.0))


def parse_shares(text: str) -> dict[str, float]:
    """`912=0.5,*=0.02` as {"912": 0.5, "*": 0.02}: a share (0-1) per operator code."""
    shares = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, _, share = item.partition("=")
        value = float(share)
        if not (code == "*" or (len(code) == 3 and code.isdigit())) or not 0 <= value <= 1:
            raise ValueError(f"{item!r}: expected CODE=SHARE (a 3-digit code or *, a share from 0 to 1)")
        shares[code] = value
    return shares


@dataclass
class Record:
    """What the stand-in saw: every accepted message id (with repeats) and counts by outcome."""

    accepted: Counter = field(default_factory=Counter)  # msg id -> times answered OK
    outcomes: Counter = field(default_factory=Counter)
    phones: dict = field(default_factory=dict)  # msg id -> phone
    times: dict = field(default_factory=dict)  # msg id -> time.time() of the first OK
    texts: dict = field(default_factory=dict)  # msg id -> the text of the first OK
    receipts: Counter = field(default_factory=Counter)  # receipts posted and taken, by status
    receipt_failures: int = 0  # posts the product did not take (sent again later)


class FakeProvider:
    def __init__(self, behaviour: Behaviour | None = None, *, log_each: bool = False) -> None:
        self.behaviour = behaviour or Behaviour()
        self.record = Record()
        self.rng = random.Random(self.behaviour.seed)
        self.log_each = log_each
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._host = "127.0.0.1"
        # Receipts to post: (when, receipt), in the order they fall due.
        self._receipts: collections.deque = collections.deque()

    # Serving -------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Protocol(self), host, port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.behaviour.receipts_url:
            self._receipts_task = asyncio.get_running_loop().create_task(self._post_receipts())

    async def serve_forever(self, host: str, port: int) -> None:
        await self.start(host, port)
        logger.info("fake provider listening on http://%s:%s", host, self.port)
        while True:
            await asyncio.sleep(0.2)
            await self._follow_down_period()

    async def _follow_down_period(self) -> None:
        """Close the listening socket while down (connections refused), reopen it after."""
        down = time.monotonic() < self.behaviour.down_until
        if down and self._server is not None:
            self._server.close()
            self._server = None
            logger.warning("fake provider is down: refusing connections")
        elif not down and self._server is None:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _Protocol(self), self._host, self.port, reuse_address=True, backlog=1024
            )
            logger.warning("fake provider is back up")

    def start_in_thread(self) -> FakeProvider:
        """Run on a loopback port in a daemon thread (tests); `url` is ready on return."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_until_complete(self._watch())

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    async def _watch(self) -> None:
        self._stopping = False
        while not self._stopping:
            await asyncio.sleep(0.05)
            await self._follow_down_period()
        if self._server:
            self._server.close()
        if task := getattr(self, "_receipts_task", None):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stop(self) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(setattr, self, "_stopping", True)
            self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def go_down(self, seconds: float) -> None:
        self.behaviour.down_until = time.monotonic() + seconds

    # One request -----------------------------------------------------------------------------
    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict] | None:
        """The status, body and extra headers to answer with; None to drop the connection."""
        b = self.behaviour
        if method == "GET" and path == "/_stats":
            stats = {
                "accepted": sum(self.record.accepted.values()),
                "unique": len(self.record.accepted),
                "outcomes": dict(self.record.outcomes),
                "receipts": dict(self.record.receipts),
                "receipts_waiting": len(self._receipts),
            }
            return 200, json.dumps(stats).encode(), {}
        if method != "POST" or not path.startswith("/v1/send/"):
            return self._count(404, b'{"code": 404, "message": "not found"}', "not_found")
        if b.token and headers.get("authorization") != f"Bearer {b.token}":
            return self._count(401, b'{"code": 401, "message": "invalid token"}', "unauthorized")
        try:
            msg_id = int(path.rsplit("/", 1)[1])
            data = json.loads(body)
            ok = (
                isinstance(data, dict)
                and data.get("id") == msg_id
                and type(data.get("phone")) is int
                and isinstance(data.get("text"), str)
            )
        except (ValueError, TypeError):
            ok = False
        if not ok:
            return self._count(400, b'{"code": 400, "message": "invalid request"}', "invalid")
        roll = self.rng.random()
        if roll < b.drop_rate:
            self.record.outcomes["dropped"] += 1
            return None
        roll -= b.drop_rate
        if roll < b.error_rate:
            return self._count(self.rng.choice((500, 503)), b"upstream trouble", "error")
        roll -= b.error_rate
        if roll < b.throttle_rate:
            return self._count(
                429, b'{"code": 429, "message": "slow down"}', "throttled", {"Retry-After": "1"}
            )
        roll -= b.throttle_rate
        if roll < b.garbage_rate:
            return self._count(200, b"<html>gateway maintenance</html>", "garbage")
        self.record.accepted[msg_id] += 1
        self.record.phones.setdefault(msg_id, data["phone"])
        self.record.times.setdefault(msg_id, time.time())
        self.record.texts.setdefault(msg_id, data["text"])
        if b.receipts_url:
            self._receipt_for(msg_id, data["phone"])
        if self.log_each:
            logger.info(
                "received message_id=%s phone=%s text_length=%s", msg_id, data["phone"], len(data["text"])
            )
        return self._count(200, OK_BODY, "ok")

    # Receipts ----------------------------------------------------------------------------------
    def _receipt_for(self, msg_id: int, phone: int) -> None:
        due = time.time() + self.behaviour.receipts_delay
        receipt = {"id": msg_id, "status": "delivered", "at": None}
        if self.rng.random() < self.behaviour.undelivered_share(phone):
            receipt |= {"status": "undelivered", "error": "absent subscriber"}
        self._receipts.append((due, receipt))

    async def _post_receipts(self) -> None:
        """Post the receipts that fall due, up to 1,000 a request, every 0.2 s; a post the product
        does not take is sent again a second later, so none is lost."""
        import aiohttp

        b = self.behaviour
        headers = {"Authorization": f"Bearer {b.receipts_token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            while True:
                await asyncio.sleep(0.2)
                now = time.time()
                batch = []
                while self._receipts and self._receipts[0][0] <= now and len(batch) < 1000:
                    due, receipt = self._receipts.popleft()
                    iso = datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds")
                    batch.append(receipt | {"at": iso})
                if not batch:
                    continue
                try:
                    async with session.post(b.receipts_url, json=batch, headers=headers) as answer:
                        body = await answer.text()
                        taken = answer.status == 200
                except (aiohttp.ClientError, TimeoutError) as e:
                    taken, body = False, repr(e)
                if taken:
                    self.record.receipts.update(r["status"] for r in batch)
                    continue
                self.record.receipt_failures += 1
                logger.warning("receipts not taken (%s): %s; again in a second", len(batch), body[:200])
                self._receipts.extendleft((now + 1, r) for r in reversed(batch))
                await asyncio.sleep(1)

    def _count(self, status: int, body: bytes, outcome: str, headers: dict | None = None):
        self.record.outcomes[outcome] += 1
        return status, body, headers or {}

    def delay(self) -> float:
        b = self.behaviour
        return b.latency + (self.rng.random() * b.jitter if b.jitter else 0.0)


class _Protocol(asyncio.Protocol):
    """Minimal HTTP/1.1: Content-Length bodies, keep-alive, one request at a time per connection."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        try:
            method, path, _ = head[0].split(" ", 2)
        except ValueError:
            self.transport.close()
            return
        result = self.provider.answer(method, path, headers, body)
        if result is None:
            self.transport.abort()
            return
        delay = self.provider.delay()
        if delay > 0:
            self.busy = True
            asyncio.get_running_loop().call_later(delay, self._respond, *result)
        else:
            self._respond(*result)

    def _respond(self, status: int, body: bytes, extra: dict) -> None:
        self.busy = False
        if self.transport.is_closing():
            return
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        if self.buffer:
            self._next()
