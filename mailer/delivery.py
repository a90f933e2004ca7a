"""Delivering messages: the Message table is the queue, and this module moves rows along it.

One round (`Deliverer.run_batch`):
1. claim up to N due messages with a lease (a conditional UPDATE; `SKIP LOCKED` on PostgreSQL),
2. decide for each at send time: send, wait for the client's window, expire (no time left before
   the mailing's end) or cancel (client deleted),
3. send the rest concurrently over pooled keep-alive connections, each request's timeout bounded
   by the time left before the mailing's end,
4. record every outcome in one transaction, only for rows still under this round's lease.

A worker killed between 1 and 4 loses nothing: its lease runs out and another worker claims the
rows again. Only a request whose answer never came can then reach the gateway a second time,
with the same message id. Breaker, rate limit and a refused token are kept in ProviderState, so
all worker processes see the same ones.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import hash_token
from mailer import metrics
from mailer.models import ENDED_WHY, Mailing, MailingState, Message, MessageStatus, ProviderState
from mailer.scheduling import in_window, window_opens_at, zone
from mailer.sending import Gateway, Outbound, Result

logger = logging.getLogger("mailer.delivery")

# Don't start a request with less time than this before the mailing's end.
MIN_TIME_LEFT = 0.5
# Breaker: only these mean "the gateway is down"; 429 and garbage answers come from a live one.
DOWN_KINDS = {"timeout", "connection", "http_5xx"}
# A down gateway is probed with one message at least this often, so recovery is noticed quickly.
BREAKER_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class EngineConfig:
    batch_size: int
    concurrency: int
    request_timeout: float
    lease: timedelta
    max_attempts: int
    retry_base: float
    retry_max: float
    breaker_threshold: int
    breaker_seconds: float
    rate_limit: float  # messages per second for all workers together; 0 = no limit

    @classmethod
    def from_settings(cls) -> EngineConfig:
        return cls(
            batch_size=settings.MAILER_BATCH_SIZE,
            concurrency=settings.MAILER_CONCURRENCY,
            request_timeout=settings.MAILER_REQUEST_TIMEOUT,
            lease=timedelta(seconds=settings.MAILER_LEASE_SECONDS),
            max_attempts=settings.MAILER_MAX_ATTEMPTS,
            retry_base=settings.MAILER_RETRY_BASE,
            retry_max=settings.MAILER_RETRY_MAX,
            breaker_threshold=settings.MAILER_BREAKER_THRESHOLD,
            breaker_seconds=settings.MAILER_BREAKER_SECONDS,
            rate_limit=settings.MAILER_RATE_LIMIT,
        )


def backoff(attempts: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter ("equal jitter"), never shorter than the gateway's Retry-After."""
    delay = min(cap, base * 2 ** max(attempts - 1, 0))
    delay = delay / 2 + random.uniform(0, delay / 2)
    return max(delay, retry_after or 0.0)


@dataclass(slots=True)
class Claimed:
    id: int
    mailing_id: int
    client_id: int | None
    attempts: int
    next_attempt_at: datetime
    last_error: str
    phone: str | None
    tz: str | None
    sent_text_id: int | None

    @property
    def log_ids(self) -> dict:
        """The ids every log line about this message carries (as record attributes)."""
        return {"mailing_id": self.mailing_id, "message_id": self.id, "client_id": self.client_id}


class Deliverer:
    """One per worker process. Not thread-safe: it owns an event loop and a pooled HTTP client."""

    _rounds = itertools.count(1)

    def __init__(
        self, owner: str, config: EngineConfig | None = None, gateway: Gateway | None = None
    ) -> None:
        self.owner = owner
        self.config = config or EngineConfig.from_settings()
        self.gateway = gateway or Gateway(
            settings.MAILER_PROVIDER_URL, settings.MAILER_PROVIDER_TOKEN, self.config.concurrency
        )
        self.token_hash = hash_token(settings.MAILER_PROVIDER_TOKEN)
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.run_until_complete(self.gateway.close())
        self.loop.close()

    # 1. Claim ----------------------------------------------------------------------------------
    def claim(self, limit: int, now: datetime) -> tuple[str, list[Claimed]]:
        lease = f"{self.owner}/{next(self._rounds)}"
        due = (
            Message.objects.filter(
                status=MessageStatus.PENDING, next_attempt_at__lte=now, mailing__state=MailingState.RUNNING
            )
            .free(now)
            .order_by("next_attempt_at")
        )
        with transaction.atomic():
            if connection.features.has_select_for_update_skip_locked:
                # PostgreSQL: workers skip each other's rows instead of queueing on them.
                due = due.select_for_update(skip_locked=True, of=("self",))
            ids = list(due.values_list("id", flat=True)[:limit])
            if not ids:
                return lease, []
            # The condition repeats the filter: on SQLite the IMMEDIATE transaction serialises
            # claimers; on any database a row already leased by someone else is not taken.
            Message.objects.filter(id__in=ids, status=MessageStatus.PENDING).free(now).update(
                locked_until=now + self.config.lease, locked_by=lease
            )
        rows = Message.objects.filter(id__in=ids, locked_by=lease).values_list(
            "id",
            "mailing_id",
            "client_id",
            "attempts",
            "next_attempt_at",
            "last_error",
            "client__phone",
            "client__timezone",
            "sent_text_id",
        )
        return lease, [Claimed(*row) for row in rows]

    # One round ---------------------------------------------------------------------------------
    def run_batch(self, now: datetime | None = None) -> int:
        """Claim, send and record one batch; returns how many messages it handled (0: idle)."""
        now = now or timezone.now()
        # The monotonic clock at the same instant as `now`: deadlines and answer times are
        # measured from it, so neither drifts by the time the claim took.
        clock = time.monotonic()
        limit = self.allowed_batch(now)
        if not limit:
            return 0
        lease, claimed = self.claim(limit, now)
        if not claimed:
            return 0
        mailings = Mailing.objects.in_bulk({c.mailing_id for c in claimed})
        decisions: dict[int, dict] = {}
        outbound: list[Outbound] = []
        for msg in claimed:
            mailing = mailings[msg.mailing_id]
            decision = self.decide(msg, mailing, now)
            if decision is None:
                deadline = clock + (mailing.end_at - now).total_seconds()
                outbound.append(
                    Outbound(msg.id, msg.phone, mailing.text, self.config.request_timeout, deadline)
                )
            else:
                decisions[msg.id] = decision
        if outbound and self.config.rate_limit:
            self.pace(outbound)
        results = self.loop.run_until_complete(self.gateway.send_many(outbound)) if outbound else []
        self.record(lease, claimed, mailings, decisions, results, now, clock)
        return len(claimed)

    def allowed_batch(self, now: datetime) -> int:
        state = ProviderState.get()
        if state.auth_error:
            if state.auth_failed_token == self.token_hash:
                return 0  # the same token was refused: wait for an operator
            # The token was changed since: try again.
            ProviderState.objects.filter(pk=1).update(auth_error="", auth_failed_token="")
            logger.warning("gateway token changed since it was refused: sending resumes")
        if state.breaker_is_open(now):
            return 0
        limit = self.config.batch_size
        if state.consecutive_failures >= self.config.breaker_threshold:
            limit = 1  # half-open: one message probes the gateway
        if self.config.rate_limit:
            limit = min(limit, max(1, int(self.config.rate_limit)))
        return limit

    # 2. Decide ---------------------------------------------------------------------------------
    def decide(self, msg: Claimed, mailing: Mailing, now: datetime) -> dict | None:
        """None to send now; otherwise the fields to write instead."""
        if mailing.state != MailingState.RUNNING:
            return {}  # paused or cancelled since the claim: just release it
        if msg.client_id is None:
            logger.info(
                "message_id=%s mailing_id=%s client_id=None cancelled: client deleted",
                msg.id,
                msg.mailing_id,
                extra=msg.log_ids,
            )
            return {"status": MessageStatus.CANCELLED, "last_error": "the client was deleted"}
        if (mailing.end_at - now).total_seconds() < MIN_TIME_LEFT:
            return self._expired(msg, ENDED_WHY)
        if mailing.has_window:
            local = now.astimezone(zone(msg.tz)).time().replace(tzinfo=None)
            if not in_window(local, mailing.window_start, mailing.window_end):
                opens = window_opens_at(now, msg.tz, mailing.window_start, mailing.window_end)
                if opens >= mailing.end_at:
                    return self._expired(msg, "the client's local window does not open before the end")
                logger.info(
                    "message_id=%s mailing_id=%s client_id=%s waits for the window until %s",
                    msg.id,
                    msg.mailing_id,
                    msg.client_id,
                    opens.isoformat(),
                    extra=msg.log_ids,
                )
                return {"next_attempt_at": opens}
        return None

    @staticmethod
    def _expired(msg: Claimed, why: str) -> dict:
        logger.info(
            "message_id=%s mailing_id=%s client_id=%s expired: %s",
            msg.id,
            msg.mailing_id,
            msg.client_id,
            why,
            extra=msg.log_ids,
        )
        return {"status": MessageStatus.EXPIRED, "last_error": why}

    def pace(self, outbound: list[Outbound]) -> None:
        """Global rate limit: reserve a run of send slots on the shared row (GCRA), then space
        this batch's sends over them, so all workers together stay under the cap."""
        rate = self.config.rate_limit
        with transaction.atomic():
            state = ProviderState.objects.select_for_update().get(pk=1)
            wall = timezone.now()
            start = max(state.rate_next_at or wall, wall)
            state.rate_next_at = start + timedelta(seconds=len(outbound) / rate)
            state.save(update_fields=["rate_next_at"])
        first = time.monotonic() + (start - wall).total_seconds()
        for i, item in enumerate(outbound):
            item.not_before = first + i / rate

    # 4. Record ---------------------------------------------------------------------------------
    def record(
        self,
        lease: str,
        claimed: list[Claimed],
        mailings: dict[int, Mailing],
        decisions: dict[int, dict],
        results: list[Result],
        now: datetime,
        clock: float,  # time.monotonic() at `now`
    ) -> None:
        by_id = {c.id: c for c in claimed}
        rows: list[Message] = []
        # Successes grouped by 0.1 s of answer time and the text they carried:
        # (bucket, text id) -> [latest answer time, ids].
        sent_groups: dict[datetime, list] = {}
        finished: Counter[str] = Counter()  # final statuses, for the metric
        down_failures = 0
        last_error = auth_error = ""
        for msg_id, fields in decisions.items():
            rows.append(Message(id=msg_id, **self._row(by_id[msg_id], **fields)))
            if fields.get("status"):
                finished[fields["status"]] += 1
        for result in results:
            msg, error = by_id[result.message_id], result.error
            mailing = mailings[msg.mailing_id]
            at = now + timedelta(seconds=result.finished_at - clock)
            attempt = msg.attempts + 1
            if error is None:
                metrics.PROVIDER_REQUEST_SECONDS.labels("ok").observe(result.seconds)
                bucket = at.replace(microsecond=at.microsecond // 100_000 * 100_000)
                group = sent_groups.setdefault((bucket, mailing.current_text_id), [at, []])
                group[0] = max(group[0], at)
                group[1].append(msg.id)
                finished[MessageStatus.SENT] += 1
                logger.info(
                    "message_id=%s mailing_id=%s client_id=%s attempt=%s POST /v1/send/%s -> sent in %.3fs",
                    msg.id,
                    msg.mailing_id,
                    msg.client_id,
                    attempt,
                    msg.id,
                    result.seconds,
                    extra=msg.log_ids,
                )
                continue
            if error.kind == "too_late":
                rows.append(Message(id=msg.id, **self._row(msg, **self._expired(msg, ENDED_WHY))))
                finished[MessageStatus.EXPIRED] += 1
                continue
            metrics.PROVIDER_ERRORS.labels(error.kind).inc()
            last_error = str(error)
            if error.auth:
                metrics.PROVIDER_REQUEST_SECONDS.labels("auth").observe(result.seconds)
                auth_error = last_error
                # Not the message's fault: no attempt counted, it goes out once the token is fixed.
                rows.append(Message(id=msg.id, **self._row(msg, last_error=last_error)))
                logger.error(
                    "message_id=%s mailing_id=%s client_id=%s POST /v1/send/%s -> %s; sending "
                    "stops until the token is fixed",
                    msg.id,
                    msg.mailing_id,
                    msg.client_id,
                    msg.id,
                    error,
                    extra=msg.log_ids,
                )
                continue
            if error.kind in DOWN_KINDS:
                down_failures += 1
            if error.permanent or attempt >= self.config.max_attempts:
                metrics.PROVIDER_REQUEST_SECONDS.labels("permanent").observe(result.seconds)
                status, fields = MessageStatus.FAILED, {}
            else:
                metrics.PROVIDER_REQUEST_SECONDS.labels("retryable").observe(result.seconds)
                delay = backoff(attempt, self.config.retry_base, self.config.retry_max, error.retry_after)
                next_at = at + timedelta(seconds=delay)
                if next_at >= mailing.end_at - timedelta(seconds=MIN_TIME_LEFT):
                    status, fields = MessageStatus.EXPIRED, {}
                else:
                    status, fields = None, {"next_attempt_at": next_at}
                    metrics.MESSAGE_RETRIES.inc()
            if status:
                finished[status] += 1
                fields["status"] = status
            fields["sent_text_id"] = mailing.current_text_id
            rows.append(
                Message(id=msg.id, **self._row(msg, attempts=attempt, last_error=last_error[:500], **fields))
            )
            logger.warning(
                "message_id=%s mailing_id=%s client_id=%s attempt=%s POST /v1/send/%s -> %s%s -> %s",
                msg.id,
                msg.mailing_id,
                msg.client_id,
                attempt,
                msg.id,
                error,
                " (may have been delivered)" if error.delivered_maybe else "",
                status or f"retry at {fields['next_attempt_at'].isoformat()}",
                extra=msg.log_ids,
            )
        with transaction.atomic():
            # Only rows still under this round's lease: if it ran out and another worker took a
            # row, that worker's outcome wins.
            leased = Message.objects.filter(locked_by=lease)
            # Successes, the bulk of the work, in a few plain UPDATEs (one per 0.1 s of answers)
            # rather than bulk_update's CASE per row. sent_at is the group's latest answer: at most
            # 0.1 s after a message's real answer, never before it (nor after the mailing's end).
            for (_, text_id), (at, sent_ids) in sent_groups.items():
                leased.filter(id__in=sent_ids).update(
                    status=MessageStatus.SENT,
                    sent_at=at,
                    sent_text_id=text_id,
                    attempts=F("attempts") + 1,
                    last_error="",
                    locked_until=None,
                    locked_by="",
                )
            if rows:
                leased.bulk_update(rows, self.FIELDS, batch_size=500)
            self.update_provider_state(
                now, finished[MessageStatus.SENT], down_failures, last_error, auth_error
            )
        for status, n in finished.items():
            metrics.MESSAGES_FINISHED.labels(status).inc(n)

    FIELDS = [
        "status",
        "sent_at",
        "attempts",
        "last_error",
        "next_attempt_at",
        "locked_until",
        "locked_by",
        "sent_text",
    ]

    @staticmethod
    def _row(msg: Claimed, **fields) -> dict:
        """Every field in FIELDS, unchanged unless given; the lease is always released."""
        return {
            "status": MessageStatus.PENDING,
            "sent_at": None,
            "attempts": msg.attempts,
            "last_error": msg.last_error,
            "next_attempt_at": msg.next_attempt_at,
            "locked_until": None,
            "locked_by": "",
            "sent_text_id": msg.sent_text_id,
            **fields,
        }

    def update_provider_state(
        self, now: datetime, sent: int, down_failures: int, last_error: str, auth_error: str
    ) -> None:
        state = ProviderState.objects.filter(pk=1)
        if auth_error:
            state.update(
                auth_error=auth_error[:500],
                auth_failed_token=self.token_hash,
                last_error=auth_error[:500],
                last_error_at=now,
            )
        if sent:
            state.update(consecutive_failures=0, breaker_open_until=None, last_success_at=now)
        elif down_failures:
            # Closed: count failures up to the threshold (a whole failed batch opens it once).
            # Open/half-open: each failed probe counts one more and doubles the open period.
            threshold = self.config.breaker_threshold
            failures = state.values_list("consecutive_failures", flat=True).first() or 0
            failures = failures + 1 if failures >= threshold else min(failures + down_failures, threshold)
            fields = {"consecutive_failures": failures, "last_error": last_error[:500], "last_error_at": now}
            if failures >= threshold:
                seconds = min(self.config.breaker_seconds * 2 ** (failures - threshold), BREAKER_MAX_SECONDS)
                fields["breaker_open_until"] = now + timedelta(seconds=seconds)
                logger.error(
                    "gateway looks down (last error: %s): breaker open for %.0fs", last_error, seconds
                )
            state.update(**fields)
        elif last_error:
            state.update(last_error=last_error[:500], last_error_at=now)
