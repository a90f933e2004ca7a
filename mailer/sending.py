"""Talking to the SMS gateway. Every request goes through `Gateway.send`, which either returns
(the gateway answered `200 {"code": 0, ...}`) or raises a `ProviderError` saying what went wrong and
whether trying again can help, so the engine and the tests have one place to look.

aiohttp rather than requests: a requests thread pool tops out near 1,000 requests/s per process on
this hardware (CPU-bound), below the engine's goal; aiohttp keeps many requests in flight on pooled
keep-alive connections at a fraction of the CPU (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from dataclasses import dataclass

import aiohttp


class ProviderError(Exception):
    """A failed send. `permanent`: retrying can't help. `auth`: the token was refused."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        permanent: bool = False,
        auth: bool = False,
        retry_after: float | None = None,
        delivered_maybe: bool = False,
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        # timeout | connection | http_5xx | http_429 | http_4xx | auth | bad_answer | too_late
        self.kind = kind
        self.detail = detail
        self.permanent = permanent
        self.auth = auth
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


@dataclass(slots=True)
class Result:
    message_id: int
    error: ProviderError | None
    seconds: float
    finished_at: float  # time.monotonic() when the answer came


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


class Gateway:
    """One pooled HTTP client; `send_many` keeps up to `concurrency` requests in flight."""

    # Don't start a request with less time than this before its deadline.
    MIN_TIME = 0.3

    def __init__(self, base_url: str, token: str, concurrency: int = 64) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self.headers, json_serialize=json.dumps
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, item: Outbound) -> None:
        # The timeout is taken when the request really starts: one that waited for a free
        # connection must still be over by the deadline.
        left = item.deadline - time.monotonic()
        if left < self.MIN_TIME:
            raise ProviderError(
                "too_late", "not sent: the mailing ends before an answer could come", permanent=True
            )
        timeout = min(item.timeout, left)
        session = await self._client()
        url = f"{self.base_url}/v1/send/{item.message_id}"
        body = {"id": item.message_id, "phone": int(item.phone), "text": item.text}
        try:
            async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            raise ProviderError("timeout", f"no answer within {timeout:.1f}s", delivered_maybe=True) from None
        except aiohttp.ClientConnectorError as e:
            raise ProviderError("connection", f"can't connect: {e.os_error or e}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ProviderError(
                "connection", f"connection lost: {type(e).__name__}", delivered_maybe=True
            ) from None
        if status in (401, 403):
            raise ProviderError("auth", f"HTTP {status}: token refused", auth=True)
        if status == 429:
            raise ProviderError("http_429", "HTTP 429: throttled", retry_after=retry_after)
        if status >= 500:
            raise ProviderError("http_5xx", f"HTTP {status}", retry_after=retry_after)
        if status != 200:
            raise ProviderError(
                "http_4xx", f"HTTP {status}: {raw[:200].decode(errors='replace')}", permanent=True
            )
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("code") != 0:
            raise ProviderError(
                "bad_answer", f"HTTP 200 with unexpected body {raw[:100]!r}", delivered_maybe=True
            )

    async def send_many(self, items: list[Outbound]) -> list[Result]:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(item: Outbound) -> Result:
            wait = item.not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with limit:
                started = time.monotonic()
                try:
                    await self.send(item)
                    error = None
                except ProviderError as e:
                    error = e
                done = time.monotonic()
                return Result(item.message_id, error, done - started, done)

        return await asyncio.gather(*(one(item) for item in items))
