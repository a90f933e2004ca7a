"""Talking to the SMS gateway. Every request goes through `Gateway.send`, which either returns
(the gateway answered `200 {"code": 0, ...}`) or raises a `GatewayError` whose `kind` says what went
wrong, so the engine and the tests have one place to look.

"Gateway" is the one word for the third-party SMS service in code and docs; the environment
variables (`MAILER_PROVIDER_URL`, `MAILER_PROVIDER_TOKEN`), the metric names (`mailer_provider_*`)
and the `fake_provider` command keep their published names.

aiohttp rather than requests: a requests thread pool tops out near 1,000 requests/s per process on
this hardware (CPU-bound), below the engine's goal; aiohttp keeps many requests in flight on pooled
keep-alive connections at a fraction of the CPU (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
import yarl

logger = logging.getLogger("mailer.delivery")

# Don't start a request with less time than this before the mailing's end: its answer could
# not come in time. The engine checks it before claiming a message, and again here when the
# request really starts.
MIN_TIME_LEFT = 0.5


class ErrorKind(StrEnum):
    """What went wrong with one request; the values are the `mailer_provider_errors` labels."""

    TIMEOUT = "timeout"  # no answer in time: it may have been delivered
    CONNECTION = "connection"  # refused, or lost before the answer
    HTTP_5XX = "http_5xx"
    HTTP_429 = "http_429"  # throttled: try again after Retry-After
    HTTP_4XX = "http_4xx"  # the gateway refuses this message: it will never succeed
    AUTH = "auth"  # 401/403: the token was refused, nobody sends until it changes
    BAD_ANSWER = "bad_answer"  # 200 with a body that isn't the contract's
    TOO_LATE = "too_late"  # not sent: the mailing ends before an answer could come
    STOPPED = "stopped"  # not sent: the worker is stopping

    @property
    def gateway_down(self) -> bool:
        """Errors that mean "the gateway is down" (the breaker's business); 429 and garbage
        answers come from a live gateway."""
        return self in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.HTTP_5XX)

    @property
    def permanent(self) -> bool:
        """Retrying can't help."""
        return self in (ErrorKind.HTTP_4XX, ErrorKind.TOO_LATE)


class GatewayError(Exception):
    """A failed send: `kind` says what happened."""

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        retry_after: float | None = None,
        delivered_maybe: bool = False,
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
        # True when the gateway may have accepted the message although we got no answer: a retry
        # may reach it twice, with the same message id (its idempotency key).
        self.delivered_maybe = delivered_maybe


@dataclass(slots=True)
class Outbound:
    message_id: int
    phone: str
    text: str
    timeout: float  # seconds for one request
    deadline: float  # time.monotonic() by which the answer must be in (the mailing's end)
    not_before: float = 0.0  # time.monotonic() before which it must not leave (rate limit)
    start_by: float = math.inf  # time.monotonic() after which it must not leave (its lease runs out)


@dataclass(slots=True)
class Result:
    message_id: int
    error: GatewayError | None
    seconds: float
    finished_at: float  # time.monotonic() when the answer came
    # It went out and holds one of the gateway's open places until its outcome is written
    # (Gateway.written).
    unwritten: bool = False


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


# A sender's messages that went out and whose outcome is not written yet: at most this many times
# MAILER_CONCURRENCY (Gateway.open_limit). What a SIGKILL can make the gateway see twice.
OPEN_FACTOR = 4


class Gateway:
    """One pooled HTTP client; `send_many` keeps up to `concurrency` requests in flight.

    The crash window: a message whose request went out is "open" until its sender has written its
    outcome and said so (`written`); `send_many` with `answered` starts no request while
    `open_limit` are open. So whatever the moment a sender dies, at most `open_limit` of its
    messages can have reached the gateway without their outcome written: they are sent again after
    their lease, with the same message ids, and nothing else is."""

    def __init__(self, base_url: str, token: str, concurrency: int = 64, open_limit: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        # Every request is the contract's JSON POST: its body is written here (body), not by aiohttp.
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._send_url = str(yarl.URL(f"{self.base_url}/v1/send/"))  # encoded once; ids are digits
        self._text: tuple[str, bytes] = ("", b'""')  # the last text's JSON: a round's texts repeat
        self.concurrency = concurrency
        self.open_limit = open_limit or OPEN_FACTOR * concurrency
        self.open = 0  # went out, outcome not yet written (changed on the event loop only)
        self._session: aiohttp.ClientSession | None = None
        # Requests in flight and open places, for all `send_many` calls together: per event loop.
        self._limits: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore, asyncio.Semaphore] | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, headers=self.headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, item: Outbound) -> None:
        # The timeout is taken when the request really starts: one that waited for a free
        # connection must still be over by the deadline.
        left = item.deadline - time.monotonic()
        if left < MIN_TIME_LEFT:
            raise GatewayError(ErrorKind.TOO_LATE, "not sent: the mailing ends before an answer could come")
        timeout = min(item.timeout, left)
        session = await self._client()
        url = yarl.URL(f"{self._send_url}{item.message_id}", encoded=True)
        try:
            async with session.post(
                url, data=self.body(item), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            raise GatewayError(
                ErrorKind.TIMEOUT, f"no answer within {timeout:.1f}s", delivered_maybe=True
            ) from None
        except aiohttp.ClientConnectorError as e:
            raise GatewayError(ErrorKind.CONNECTION, f"can't connect: {e.os_error or e}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise GatewayError(
                ErrorKind.CONNECTION, f"connection lost: {type(e).__name__}", delivered_maybe=True
            ) from None
        if status in (401, 403):
            raise GatewayError(ErrorKind.AUTH, f"HTTP {status}: token refused")
        if status == 429:
            raise GatewayError(ErrorKind.HTTP_429, "HTTP 429: throttled", retry_after=retry_after)
        if status >= 500:
            raise GatewayError(ErrorKind.HTTP_5XX, f"HTTP {status}", retry_after=retry_after)
        if status != 200:
            raise GatewayError(ErrorKind.HTTP_4XX, f"HTTP {status}: {raw[:200].decode(errors='replace')}")
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("code") != 0:
            raise GatewayError(
                ErrorKind.BAD_ANSWER, f"HTTP 200 with unexpected body {raw[:100]!r}", delivered_maybe=True
            )

    def body(self, item: Outbound) -> bytes:
        """The contract's body, `{"id": int, "phone": int, "text": str}`, as JSON: the text encoded
        once for all the messages that carry it (the whole round of a mailing without variables)."""
        if item.text is not self._text[0]:
            self._text = (item.text, json.dumps(item.text).encode())
        return b'{"id": %d, "phone": %d, "text": %s}' % (item.message_id, int(item.phone), self._text[1])

    def _semaphores(self) -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._limits is None or self._limits[0] is not loop:
            self._limits = (loop, asyncio.Semaphore(self.concurrency), asyncio.Semaphore(self.open_limit))
            self.open = 0
        return self._limits[1], self._limits[2]

    def written(self, n: int) -> None:
        """On the event loop (call_soon_threadsafe): the outcomes of `n` open messages are written."""
        places = self._semaphores()[1]
        self.open -= n
        for _ in range(n):
            places.release()

    async def send_many(
        self,
        items: list[Outbound],
        stopping: Callable[[], bool] | None = None,
        answered: Callable[[Result], None] | None = None,
    ) -> list[Result]:
        """Send all, `concurrency` at a time (with any other call's requests). Once `stopping()`
        is true, what has not started is not sent, and requests still in flight after STOP_DRAIN
        seconds are cut short: both come back as ErrorKind.STOPPED, so a stopping worker is out
        within seconds. `answered` is called with each result as it comes; such a call's
        messages each take an open place when they go out, held until `written`."""
        limit, places = self._semaphores()

        async def one(item: Outbound) -> Result:
            started = 0.0
            place = False
            try:
                wait = item.not_before - time.monotonic()
                if wait > 0 and not (stopping and stopping()):
                    await asyncio.sleep(wait)
                if answered is not None:
                    left = item.start_by - time.monotonic()
                    if places.locked() and left < math.inf:  # waits no later than start_by
                        try:
                            async with asyncio.timeout(max(left, 0)):
                                await places.acquire()
                        except TimeoutError:
                            raise GatewayError(ErrorKind.STOPPED, "not sent: its lease runs out") from None
                    else:
                        await places.acquire()
                    place = True
                async with limit:
                    if stopping is not None and stopping():
                        raise asyncio.CancelledError
                    if time.monotonic() > item.start_by:
                        raise GatewayError(ErrorKind.STOPPED, "not sent: its lease runs out")
                    started = time.monotonic()
                    self.open += place
                    await self.send(item)
                    error = None
            except GatewayError as e:
                error = e
            except asyncio.CancelledError:
                if started:
                    error = GatewayError(
                        ErrorKind.STOPPED, "cut short: the worker stopped", delivered_maybe=True
                    )
                else:
                    error = GatewayError(ErrorKind.STOPPED, "not sent: the worker stopped")
            except Exception as e:  # a bug: still an answer, so the sender's count of them holds
                logger.exception("message_id=%s: sending failed", item.message_id)
                error = GatewayError(
                    ErrorKind.CONNECTION, f"{type(e).__name__}: {e}", delivered_maybe=bool(started)
                )
            if place and not started:  # never went out: nothing to write first
                places.release()
                place = False
            done = time.monotonic()
            result = Result(item.message_id, error, done - started if started else 0.0, done, place)
            if answered is not None:
                answered(result)
            return result

        tasks = [asyncio.ensure_future(one(item)) for item in items]
        watch = asyncio.ensure_future(self._cut_short(tasks, stopping)) if stopping else None
        try:
            return await asyncio.gather(*tasks)
        finally:
            if watch is not None:
                watch.cancel()

    STOP_DRAIN = 5.0

    async def _cut_short(self, tasks: list[asyncio.Future], stopping: Callable[[], bool]) -> None:
        while not stopping():
            await asyncio.sleep(0.1)
        await asyncio.sleep(self.STOP_DRAIN)
        for task in tasks:
            task.cancel()
