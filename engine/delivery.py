"""Delivering messages: the Message table is the queue, and this module moves rows along it.

One round (`Deliverer.run_batch`):
1. claim up to N due messages with a lease (a conditional UPDATE; `SKIP LOCKED` on PostgreSQL),
2. decide for each at send time: send, wait for the client's window, expire (no time left before
   the mailing's end) or cancel (client deleted),
3. send the rest concurrently over pooled keep-alive connections, each request's timeout bounded
   by the time left before the mailing's end, and no more than `Gateway.open_limit` of them out
   without their outcome written,
4. write the outcomes as the answers come, in small groups, each in one transaction, only for rows
   still under this round's lease: in a sender, by its writer thread (start_writer), meanwhile.

A worker killed between 1 and 4 loses nothing: its lease runs out and another worker claims the
rows again. Only a message handed to the gateway whose outcome was not written can then reach it
a second time, with the same message id: at most `Gateway.open_limit` per sender. Breaker, rate limit and
a refused token are kept in GatewayState, so all worker processes see the same ones.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django import db
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, OuterRef, Q
from django.utils import timezone

from accounts.models import hash_token
from engine import frequency
from engine.scheduling import closed_why
from engine.sending import MIN_TIME_LEFT, ErrorKind, Gateway, GatewayError, Outbound, Result
from mailer import bulk, links, metrics, receipts
from mailer.models import (
    CAP_HELD_WHY,
    CAP_WHY,
    CLIENT_DELETED_WHY,
    ENDED_WHY,
    NO_CONSENT_WHY,
    NO_VALUE_WHY,
    OPTED_OUT_WHY,
    TOO_MANY_PARTS_WHY,
    Client,
    GatewayState,
    Mailing,
    MailingCounts,
    MailingState,
    MailingText,
    Message,
    MessageStatus,
    PersonalText,
    SentMinute,
    StopEntry,
    frequency_cap,
    operator_code_of,
)
from mailer.windows import in_windows, local_time, opens_at

logger = logging.getLogger("mailer.delivery")


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
    max_parts: int = 0  # MAILER_MAX_PARTS: a text over this many SMS parts is not sent; 0 = no cap

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
            max_parts=settings.MAILER_MAX_PARTS,
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
    opted_out: bool = False  # the client's phone is on the stop list now
    consent_at: datetime | None = None  # the client's consent to advertising, as it is now
    name: str = ""  # the client's name and custom field values now, for a personal text
    attributes: dict | None = None

    @property
    def log_ids(self) -> dict:
        """The ids every log line about this message carries (as record attributes)."""
        return {"mailing_id": self.mailing_id, "message_id": self.id, "client_id": self.client_id}


@dataclass(slots=True)
class Outcome:
    """What one round comes to for one message: the row's new fields, its final status (None:
    it stays pending) and the log line that says why."""

    fields: dict
    status: str | None
    level: int
    event: str


def decide(
    msg: Claimed, mailing: Mailing, now: datetime, max_parts: int = 0, personal: PersonalText | None = None
) -> Outcome | None:
    """Before sending: None to send now, otherwise what happens instead (pure). `personal`: the
    client's own text of a personal mailing (Mailing.text_for), None if they can have none."""
    if mailing.state != MailingState.RUNNING:
        return Outcome({}, None, logging.DEBUG, "released: the mailing is not running")
    parts = personal.parts if personal else mailing.sms_parts
    if max_parts and parts > max_parts:
        # Saving refuses such a text as written; this one predates a lower cap, or a client's
        # values make it longer. Never billed for more.
        return Outcome(
            {"status": MessageStatus.FAILED, "last_error": TOO_MANY_PARTS_WHY},
            MessageStatus.FAILED,
            logging.WARNING,
            f"failed: the text takes {parts} SMS parts, over MAILER_MAX_PARTS ({max_parts})",
        )
    if msg.client_id is None:
        return Outcome(
            {"status": MessageStatus.CANCELLED, "last_error": CLIENT_DELETED_WHY},
            MessageStatus.CANCELLED,
            logging.INFO,
            "cancelled: client deleted",
        )
    if msg.opted_out:
        # Opted out after the audience was resolved: never sent, and the page says why.
        return Outcome(
            {"status": MessageStatus.CANCELLED, "last_error": OPTED_OUT_WHY},
            MessageStatus.CANCELLED,
            logging.INFO,
            "cancelled: the client is on the stop list",
        )
    if msg.consent_at is None and mailing.needs_consent():
        # Consent withdrawn after the audience was resolved (or the mailing became advertising).
        return Outcome(
            {"status": MessageStatus.CANCELLED, "last_error": NO_CONSENT_WHY},
            MessageStatus.CANCELLED,
            logging.INFO,
            "cancelled: no consent to advertising on record",
        )
    if personal is None and mailing.per_message():
        return Outcome(
            {"status": MessageStatus.CANCELLED, "last_error": NO_VALUE_WHY},
            MessageStatus.CANCELLED,
            logging.INFO,
            "cancelled: the client has no value for a variable of the text",
        )
    if (mailing.end_at - now).total_seconds() < MIN_TIME_LEFT:
        return _expired(ENDED_WHY)
    if (spans := mailing.send_windows()) and not in_windows(local_time(now, msg.tz), spans):
        opens = opens_at(now, msg.tz, spans)
        if opens is None or opens >= mailing.end_at:
            return _expired(closed_why(mailing, msg.tz, now))
        return Outcome(
            {"next_attempt_at": opens}, None, logging.INFO, f"waits for the window until {opens.isoformat()}"
        )
    return None


def cap_outcome(mailing: Mailing, until: datetime, tz_name: str) -> Outcome:
    """A message over MAILER_FREQUENCY_CAP: it waits until the cap allows it and the client's
    windows are open, or expires if that is not before its mailing's end."""
    opens = opens_at(until, tz_name, mailing.send_windows())  # no spans: `until` itself
    if opens is None or (mailing.end_at - opens).total_seconds() < MIN_TIME_LEFT:
        return _expired(CAP_WHY)
    return Outcome(
        {"next_attempt_at": opens, "last_error": CAP_HELD_WHY},
        None,
        logging.INFO,
        f"waits for MAILER_FREQUENCY_CAP until {opens.isoformat()}",
    )


def _expired(why: str) -> Outcome:
    return Outcome(
        {"status": MessageStatus.EXPIRED, "last_error": why},
        MessageStatus.EXPIRED,
        logging.INFO,
        f"expired: {why}",
    )


def outcome(
    msg: Claimed,
    error: GatewayError | None,
    at: datetime,
    mailing: Mailing,
    config: EngineConfig,
    healthy: bool,
    seconds: float,
) -> Outcome:
    """The gateway's answer for one message, as the row's new state (pure, but for the jitter).

    `at` is when the answer came. `healthy`: most recent requests got through
    (GatewayState.is_healthy), so a failure is a random one of a gateway that is up, not the
    message's fault: it is retried after the first backoff step whatever its attempts, and the
    mailing ends near its fault-free time. Whether the gateway is down is the breaker's business
    (GatewayState.note_round); while it looks down, retries back off by the message's attempts."""
    attempt = msg.attempts + 1
    request = f"attempt={attempt} POST /v1/send/{msg.id}"
    if error is None:
        fields = {"status": MessageStatus.SENT, "sent_at": at, "attempts": attempt, "last_error": ""}
        return Outcome(fields, MessageStatus.SENT, logging.INFO, f"{request} -> sent in {seconds:.3f}s")
    if error.kind == ErrorKind.TOO_LATE:
        return _expired(ENDED_WHY)
    maybe = " (may have been delivered)" if error.delivered_maybe else ""
    if error.kind == ErrorKind.STOPPED:
        return Outcome({}, None, logging.INFO, f"released: {error.detail}{maybe}")
    text = str(error)
    if error.kind == ErrorKind.AUTH:
        # Not the message's fault: no attempt counted, it goes out once the token is fixed.
        return Outcome(
            {"last_error": text[:500]},
            None,
            logging.ERROR,
            f"POST /v1/send/{msg.id} -> {error}; sending stops until the token is fixed",
        )
    fields = {"attempts": attempt, "last_error": text[:500], "sent_text_id": mailing.current_text_id}
    if error.kind.permanent or attempt >= config.max_attempts:
        fields["status"] = MessageStatus.FAILED
        return Outcome(
            fields, MessageStatus.FAILED, logging.WARNING, f"{request} -> {error}{maybe} -> failed"
        )
    steps = 1 if healthy else attempt
    delay = backoff(steps, config.retry_base, config.retry_max, error.retry_after)
    next_at = at + timedelta(seconds=delay)
    if next_at >= mailing.end_at - timedelta(seconds=MIN_TIME_LEFT):
        fields["status"] = MessageStatus.EXPIRED
        return Outcome(
            fields, MessageStatus.EXPIRED, logging.WARNING, f"{request} -> {error}{maybe} -> expired"
        )
    fields["next_attempt_at"] = next_at
    return Outcome(
        fields, None, logging.WARNING, f"{request} -> {error}{maybe} -> retry at {next_at.isoformat()}"
    )


def request_label(error: GatewayError | None) -> str | None:
    """The `mailer_provider_request_seconds` label of a request, None if none was made."""
    if error is None:
        return "ok"
    if error.kind in (ErrorKind.TOO_LATE, ErrorKind.STOPPED):
        return None
    if error.kind == ErrorKind.AUTH:
        return "auth"
    return "permanent" if error.kind.permanent else "retryable"


# A sender writes answers in groups: once half of Gateway.open_limit have come, or this many seconds
# after the first of them, whichever is sooner. Each write costs the same few statements whatever
# it carries, so the fewest writes that keep the gateway sending are the cheapest.
RECORD_EVERY = 0.1
# A writer that could not write tries again after this, doubling up to the maximum: outcomes must
# be in before their lease runs out (SEND_WITHIN), so never much later.
WRITE_RETRY_FIRST, WRITE_RETRY_MAX = 0.2, 1.0
# A message goes out only in this first part of its round's lease (less the request's timeout), so
# that its answer has the rest to be written, through a database that goes away for a while: after
# that, another worker could claim it and send it again. Later, it is released unsent instead.
SEND_WITHIN = 0.5
# A group of successes: sent, and their leases released (only rows still under the round's lease).
_SENT = (
    f"UPDATE {Message._meta.db_table} SET status = %s, sent_at = %s, sent_text_id = %s, "
    "attempts = attempts + 1, last_error = '', locked_until = NULL, locked_by = '' "
    "WHERE locked_by = %s AND id IN ({ids}) RETURNING id"
)


@dataclass
class Round:
    """One claimed batch, from the claim until its last outcome is written."""

    lease: str
    now: datetime
    clock: float  # time.monotonic() at `now`
    claimed: list[Claimed]
    mailings: dict[int, Mailing]
    decisions: dict[int, Outcome]
    healthy: bool = True  # GatewayState.is_healthy() when the round began
    outbound: list[Outbound] = field(default_factory=list)
    unanswered: int = 0  # messages handed to the gateway without an answer yet
    # What GatewayState.note_round is told once the round's last answer is written.
    note: dict = field(
        default_factory=lambda: {"sent": 0, "down_failures": 0, "last_error": "", "auth_error": ""}
    )
    # Messages that fill their client's day or week (MAILER_FREQUENCY_CAP) if sent: until when.
    fills: dict[int, datetime] = field(default_factory=dict)
    # Messages of personal mailings sent: their own texts (unsaved PersonalText rows).
    personal: dict[int, PersonalText] = field(default_factory=dict)

    @functools.cached_property
    def by_id(self) -> dict[int, Claimed]:
        return {c.id: c for c in self.claimed}


@dataclass
class Part:
    """Outcomes of one round written together: its decisions, or answers as they came."""

    batch: Round
    outcomes: dict[int, Outcome]
    requests: int = 0  # messages among them that went out (open places: Gateway.written)
    last: bool = False  # the round's last answers: GatewayState hears what the round saw


class Deliverer:
    """One per sender process. It owns an event loop and a pooled HTTP client (the gateway's
    thread) and, in a sender, a writer thread; claims are made by the thread that created it.

    The crash window. A message reaches the gateway twice only if a sender sent it and did not
    write its outcome before it died (killed, or the database gone for longer than the lease).
    So answers are written as they come, in groups of RECORD_EVERY, and the gateway sends no more
    while `Gateway.open_limit` (OPEN_FACTOR x MAILER_CONCURRENCY) of the sender's messages are
    out without their outcome written. That is what a SIGKILL can repeat, whatever the moment
    (tests/engine/test_crash_window.py)."""

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
        # The gateway is talked to from an event loop in a thread of its own, so requests are in
        # flight while this thread claims the next round and the writer (start_writer; else this
        # thread) writes answers.
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self._loop_thread.start()
        # To be written, as they come: (round, result) from the gateway's thread, a round's
        # decisions (Part) from the claiming thread.
        self.answers: queue.SimpleQueue[tuple[Round, Result] | Part] = queue.SimpleQueue()
        self.handed = 0  # messages handed to the gateway (counted by the claiming thread)
        self.taken = 0  # their answers taken from `answers` (counted by the writing thread)
        # Outcomes settled but not yet written (the database missed them, or not yet tried):
        # written oldest first. Nothing new is claimed while the database refuses them.
        self.unrecorded: list[Part] = []
        self.refused = False  # the last write failed (the database is away)
        self._writer: threading.Thread | None = None
        self._stop_writing = threading.Event()
        # Wake-ups, so that no thread polls (each wake-up takes the GIL from the gateway's thread):
        # a group of answers to write has come; the gateway is short of work (a claim is due).
        self._group = threading.Event()
        self._room = threading.Event()
        self.claim_after = 0.0  # time.monotonic() before which a claim would find nothing new
        # This sender's test send whose answers are awaited (engine.testsends): at most one.
        self.test_in_flight: tuple | None = None

    @property
    def open(self) -> int:
        """Messages out without their outcome written: what a kill now could repeat."""
        return self.gateway.open

    @property
    def open_limit(self) -> int:
        return self.gateway.open_limit

    @property
    def out(self) -> int:
        """Handed to the gateway, answer not yet taken."""
        return self.handed - self.taken

    @property
    def busy(self) -> bool:
        """Something is claimed and not yet written."""
        return bool(self.out or self.unrecorded or not self.answers.empty())

    @property
    def unrecorded_messages(self) -> int:
        """The messages whose outcomes wait for the database."""
        return sum(len(part.outcomes) for part in self.unrecorded)

    def close(self) -> None:
        self.stop_writer()
        asyncio.run_coroutine_threadsafe(self.gateway.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(10)
        self.loop.close()

    # The writer --------------------------------------------------------------------------------
    def start_writer(self) -> None:
        """Write answers in a thread of its own (a sender): they go on being written while this
        thread claims, ticks the schedule and resolves audiences, so what is open at the gateway
        is written within about RECORD_EVERY plus the write. It has its own database connection."""
        self._stop_writing.clear()
        self._writer = threading.Thread(target=self._write, name="writer", daemon=True)
        self._writer.start()

    def stop_writer(self) -> None:
        """After its current write; what is left is written by the calling thread (flush)."""
        if self._writer is not None:
            self._stop_writing.set()
            self._writer.join(30)
            self._writer = None

    @property
    def writing(self) -> bool:
        return self._writer is not None

    def _write(self) -> None:
        wait = 0.0
        try:
            while not self._stop_writing.is_set():
                try:
                    self.take(RECORD_EVERY)
                    self.flush()
                    if wait:
                        logger.warning("writer %s: the database is back", self.owner)
                    wait = 0.0
                except DatabaseError as e:
                    wait = min(wait * 2, WRITE_RETRY_MAX) if wait else WRITE_RETRY_FIRST
                    logger.warning(
                        "writer %s: database unavailable (%s); %s outcomes kept; trying again in %.1fs",
                        self.owner,
                        str(e).strip()[:200],
                        self.unrecorded_messages,
                        wait,
                    )
                    self._stop_writing.wait(wait)
                except Exception:  # a bug must not stop the writing: log it, wait, go on
                    logger.exception("writer %s: writing failed", self.owner)
                    self._stop_writing.wait(1.0)
        finally:
            db.connections.close_all()  # this thread's own

    # 1. Claim ----------------------------------------------------------------------------------
    def claim(self, limit: int, now: datetime) -> tuple[str, list[Claimed]]:
        lease = f"{self.owner}/{next(self._rounds)}"
        running = (
            Mailing.objects.filter(state=MailingState.RUNNING).order_by("id").values_list("id", flat=True)
        )
        with transaction.atomic():
            # Each running mailing's first due messages (its queue: never a sort of all its pending
            # messages, which grew with the audience), then the first due of them all.
            due = []
            for mailing_id in running:
                mine = Message.objects.queue(mailing_id, now)
                if connection.features.has_select_for_update_skip_locked:
                    # PostgreSQL: workers skip each other's rows instead of queueing on them.
                    mine = mine.select_for_update(skip_locked=True)
                due += mine.values_list("next_attempt_at", "id")[:limit]
            ids = [pk for _, pk in sorted(due)[:limit]]
            if not ids:
                return lease, []
            # The condition repeats the filter: on SQLite the IMMEDIATE transaction serialises
            # claimers; on any database a row already leased by someone else is not taken.
            Message.objects.filter(id__in=ids, status=MessageStatus.PENDING).free(now).update(
                locked_until=now + self.config.lease, locked_by=lease
            )
        rows = (
            Message.objects.filter(id__in=ids, locked_by=lease)
            .annotate(opted_out=StopEntry.standing_for(OuterRef("client__phone")))
            .values_list(
                "id",
                "mailing_id",
                "client_id",
                "attempts",
                "next_attempt_at",
                "last_error",
                "client__phone",
                "client__timezone",
                "sent_text_id",
                "opted_out",
                "client__consent_at",
                "client__name",
                "client__attributes",
            )
        )
        return lease, [Claimed(*row) for row in rows]

    # One step ---------------------------------------------------------------------------------
    def run_batch(
        self,
        now: datetime | None = None,
        stopping: Callable[[], bool] | None = None,
        overlap: bool = False,
    ) -> int:
        """Claim a round when the gateway is about to run out of work, hand the gateway what may
        go, and write answers as they come; returns how many messages it claimed.

        With `overlap` (the sender), it returns within about STEP seconds, with requests still in
        flight: the next call goes on with them, so the gateway is never idle while the database
        works. Without, it waits until the round is written (tests). Outcomes the database missed
        are written first: nothing new is claimed until they are. While the database is away this
        raises (a DatabaseError) and the caller tries again later; answers keep coming meanwhile,
        and at most `Gateway.open_limit` of them wait for it. With a writer (start_writer), this
        thread writes nothing: it claims, unless the writer's last write failed."""
        if not self.writing:
            self.flush()
        claimed = 0
        room = self.out < self.config.batch_size and not self.refused
        if room and (not overlap or time.monotonic() >= self.claim_after):
            batch = self.prepare(now)
            if batch is None:  # the sender asks again in a moment, not at each answer of the tail
                self.claim_after = time.monotonic() + self.IDLE_CLAIM
            else:
                claimed = len(batch.claimed)
                self.submit(batch, stopping)
        if not overlap:
            self.collect()
            return claimed
        if self.writing:  # the writer writes; this thread waits for the next claim, STEP at most
            self._room.clear()
            if self.refused:
                time.sleep(self.STEP)
            elif self.out >= self.config.batch_size:
                self._room.wait(self.STEP)  # until the gateway is short of work
            elif not claimed and self.busy:  # the tail: the next claim is due at claim_after
                time.sleep(min(self.STEP, max(self.claim_after - time.monotonic(), 0)))
            return claimed
        until = time.monotonic() + self.STEP
        while self.busy and not (stopping and stopping()):
            self.take(RECORD_EVERY)
            self.flush()
            if time.monotonic() > until or self.out < self.config.batch_size:
                break
        return claimed

    STEP = 0.2  # seconds a sender's step may write answers before it claims, ticks and beats again
    IDLE_CLAIM = 0.2  # after a claim found nothing, seconds before the next one

    def prepare(self, now: datetime | None = None) -> Round | None:
        """Claim a batch and decide what to do with each message; None if there is nothing."""
        now = now or timezone.now()
        # The monotonic clock at the same instant as `now`: deadlines and answer times are
        # measured from it, so neither drifts by the time the claim took.
        clock = time.monotonic()
        state = GatewayState.get()
        limit = state.round_size(
            now,
            self.token_hash,
            self.config.batch_size,
            self.config.breaker_threshold,
            self.config.rate_limit,
        )
        if not limit:
            return None
        lease, claimed = self.claim(limit, now)
        if not claimed:
            return None
        mailings = Mailing.objects.in_bulk({c.mailing_id for c in claimed})
        batch = Round(lease, now, clock, claimed, mailings, {}, healthy=state.is_healthy())
        # Sent later than this, an answer would have less than half the lease to be written.
        start_by = clock + self.config.lease.total_seconds() * SEND_WITHIN - self.config.request_timeout
        tally = self.tally(batch)
        own = self.own_texts(batch)
        for msg in claimed:
            mailing = mailings[msg.mailing_id]
            personal = own.get(msg.id)
            decision = decide(msg, mailing, now, self.config.max_parts, personal)
            if decision is None and tally is not None and mailing.is_capped():
                until, fills = tally.admit(msg.client_id, msg.tz, now)
                decision = None if until is None else cap_outcome(mailing, until, msg.tz)
                if fills is not None:
                    batch.fills[msg.id] = fills
            if decision is None:
                deadline = clock + (mailing.end_at - now).total_seconds()
                text = mailing.text
                if personal is not None:
                    batch.personal[msg.id] = personal
                    text = personal.text
                batch.outbound.append(
                    Outbound(
                        msg.id, msg.phone, text, self.config.request_timeout, deadline, start_by=start_by
                    )
                )
            else:
                batch.decisions[msg.id] = decision
        if batch.outbound and self.config.rate_limit:
            self.pace(batch.outbound)
        return batch

    @staticmethod
    def own_texts(batch: Round) -> dict[int, PersonalText]:
        """The texts of the round's messages whose text is their own (links.own_texts); links are
        made only for those that may be sent this round (decide)."""
        messages = []
        for msg in batch.claimed:
            mailing = batch.mailings[msg.mailing_id]
            if mailing.per_message():
                goes = mailing.state == MailingState.RUNNING and msg.client_id is not None
                messages.append((msg.id, mailing, msg.client_id, msg.phone, msg.name, msg.attributes, goes))
        return links.own_texts(messages)

    @staticmethod
    def tally(batch: Round) -> frequency.Tally | None:
        """What the round's clients of capped (advertising) mailings were sent and have in flight,
        when MAILER_FREQUENCY_CAP is set: one query."""
        cap = frequency_cap()
        clients = {
            c.client_id for c in batch.claimed if c.client_id and batch.mailings[c.mailing_id].is_capped()
        }
        if not cap or not clients:
            return None
        return frequency.Tally.load(cap, clients, batch.lease, batch.now)

    def submit(self, batch: Round, stopping: Callable[[], bool] | None) -> None:
        """The round's decisions go to be written; its messages to send, to the gateway, which
        sends them as open places allow."""
        if batch.decisions:
            self.log(batch, batch.decisions)
            self.answers.put(Part(batch, dict(batch.decisions)))
        if not batch.outbound:
            return
        batch.unanswered = len(batch.outbound)
        self.handed += len(batch.outbound)
        answered = functools.partial(self._answered, batch)
        sending = self.gateway.send_many(batch.outbound, stopping, answered)
        asyncio.run_coroutine_threadsafe(sending, self.loop)

    def _answered(self, batch: Round, result: Result) -> None:
        """On the gateway's thread, as each answer comes."""
        self.answers.put((batch, result))
        if self.answers.qsize() >= self.open_limit // 2:
            self._group.set()

    def take(self, wait: float = 0.0) -> None:
        """Settle the answers that came: they go to be written. With `wait`, it waits up to that
        long for the first, then for half of `open_limit` or RECORD_EVERY, whichever comes first,
        so that a write carries a group of answers (and this thread wakes once per group)."""
        came = []
        try:
            if wait > 0:
                came.append(self.answers.get(timeout=wait))
                if self.answers.qsize() + 1 < self.open_limit // 2:
                    self._group.wait(RECORD_EVERY)
            self._group.clear()
            while True:
                came.append(self.answers.get_nowait())
        except queue.Empty:
            pass
        rounds: dict[str, tuple[Round, list[Result]]] = {}
        for item in came:
            if isinstance(item, Part):  # a round's decisions
                self.unrecorded.append(item)
            else:
                batch, result = item
                rounds.setdefault(batch.lease, (batch, []))[1].append(result)
        for batch, results in rounds.values():
            self.taken += len(results)
            if self.out < self.config.batch_size:
                self._room.set()
            batch.unanswered -= len(results)
            outcomes = self.settle(batch, results)
            went = sum(result.unwritten for result in results)
            self.unrecorded.append(Part(batch, outcomes, went, last=not batch.unanswered))

    def collect(self) -> None:
        """Write every answer of what was handed to the gateway (one round at a time: tests)."""
        while self.out:
            self.take(RECORD_EVERY)
            self.flush()
        self.flush()

    def pace(self, outbound: list[Outbound]) -> None:
        """Global rate limit: reserve a run of send slots for all workers together, then space
        this batch's sends over them."""
        rate = self.config.rate_limit
        # The clock is read once the slots are ours: read before, the wait for the row's lock
        # would move every send that much ahead of its slot.
        wait = GatewayState.reserve(len(outbound), rate)
        first = time.monotonic() + wait
        for i, item in enumerate(outbound):
            item.not_before = first + i / rate

    # 3. Settle: what the answers mean, said once -------------------------------------------------
    def settle(self, batch: Round, results: list[Result]) -> dict[int, Outcome]:
        """Turn answers into outcomes, and log and count them (once, whatever happens to the
        database later); what the round saw adds up in its note."""
        by_id = batch.by_id
        outcomes = {}
        note = batch.note
        for result in results:
            msg, error = by_id[result.message_id], result.error
            at = batch.now + timedelta(seconds=result.finished_at - batch.clock)
            outcomes[msg.id] = outcome(
                msg, error, at, batch.mailings[msg.mailing_id], self.config, batch.healthy, result.seconds
            )
            if label := request_label(error):
                metrics.GATEWAY_REQUEST_SECONDS.labels(label).observe(result.seconds)
            if error is None or not label:
                continue
            metrics.GATEWAY_ERRORS.labels(error.kind).inc()
            note["last_error"] = str(error)
            if error.kind == ErrorKind.AUTH:
                note["auth_error"] = str(error)
                continue
            note["down_failures"] += error.kind.gateway_down
            if outcomes[msg.id].status is None:
                metrics.MESSAGE_RETRIES.inc()
        self.log(batch, outcomes)
        note["sent"] += sum(o.status == MessageStatus.SENT for o in outcomes.values())
        return outcomes

    @staticmethod
    def log(batch: Round, outcomes: dict[int, Outcome]) -> None:
        by_id = batch.by_id
        for msg_id, result in outcomes.items():
            msg = by_id[msg_id]
            logger.log(
                result.level,
                "message_id=%s mailing_id=%s client_id=%s %s",
                msg.id,
                msg.mailing_id,
                msg.client_id,
                result.event,
                extra=msg.log_ids,
            )
        finished = Counter(o.status for o in outcomes.values() if o.status)
        for status, n in finished.items():
            metrics.MESSAGES_FINISHED.labels(status).inc(n)

    # 4. Record ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the unrecorded outcomes, oldest first, with the answers that came meanwhile (so
        that they are written even while claims fail). On a database error they are kept (and the
        broken connection dropped, so the next try opens a new one) and the error raised."""
        self.take()
        while self.unrecorded:
            try:
                self.record(self.unrecorded[0])
            except DatabaseError:
                self.refused = True
                db.close_old_connections()
                raise
            part = self.unrecorded.pop(0)
            if part.requests:  # their open places are free again
                self.loop.call_soon_threadsafe(self.gateway.written, part.requests)
        self.refused = False

    def record(self, part: Part) -> None:
        """The part's outcomes in one transaction, only for rows still under their round's lease:
        if it ran out and another worker took a row, that worker's outcome wins. Safe to repeat:
        once written, the rows are no longer under the lease."""
        batch, outcomes = part.batch, part.outcomes
        by_id = batch.by_id
        rows: list[Message] = []
        released: list[int] = []
        # Successes grouped by 0.1 s of answer time and the text they carried:
        # (bucket, text id) -> [latest answer time, ids].
        sent_groups: dict[tuple, list] = {}
        for msg_id, result in outcomes.items():
            msg = by_id[msg_id]
            if result.status == MessageStatus.SENT:
                at = result.fields["sent_at"]
                bucket = at.replace(microsecond=at.microsecond // 100_000 * 100_000)
                text_id = batch.mailings[msg.mailing_id].current_text_id
                group = sent_groups.setdefault((bucket, text_id), [at, []])
                group[0] = max(group[0], at)
                group[1].append(msg_id)
            elif result.fields:
                rows.append(Message(id=msg_id, **self._row(msg, **result.fields)))
            else:  # not sent (the worker stops, the lease runs out): only the lease goes
                released.append(msg_id)
        with transaction.atomic():
            leased = Message.objects.filter(locked_by=batch.lease)
            # The rows whose status changes and that are still ours (locked, on PostgreSQL, until
            # the commit): only they count in the mailings' counts, so a repeated write or a row
            # another worker took over is not counted twice. Successes, the bulk of the work, say
            # which they are themselves (RETURNING), in a few plain UPDATEs, one per 0.1 s of
            # answers, rather than bulk_update's CASE per row. sent_at is the group's latest
            # answer: at most 0.1 s after a message's real answer, never before it (nor after
            # the mailing's end).
            final = [
                msg_id
                for msg_id, result in outcomes.items()
                if result.status not in (None, MessageStatus.SENT)
            ]
            held = set(leased.filter(id__in=final).select_for_update().values_list("id", flat=True))
            stamp = connection.ops.adapt_datetimefield_value
            written = 0
            for (_, text_id), (at, sent_ids) in sent_groups.items():
                sql = _SENT.format(ids=", ".join(["%s"] * len(sent_ids)))
                params = [MessageStatus.SENT, stamp(at), text_id, batch.lease, *sent_ids]
                ids = [pk for (pk,) in bulk.fetch(sql, params)]
                held.update(ids)
                written += len(ids)
            if rows:
                written += leased.bulk_update(rows, self.FIELDS, batch_size=500)
            if released:
                written += leased.filter(id__in=released).update(locked_until=None, locked_by="")
            self.keep_texts(batch, outcomes, held)
            self.cap_clients(batch, outcomes, held)
            # The rows every sender updates, last: each is locked until the commit.
            self.count(batch, outcomes, held, sent_groups)
            if part.last:
                GatewayState.note_round(
                    batch.now,
                    **batch.note,
                    token_hash=self.token_hash,
                    threshold=self.config.breaker_threshold,
                    breaker_seconds=self.config.breaker_seconds,
                )
        if written < len(outcomes):
            # The lease ran out first (the database was away that long): another worker may have
            # claimed these rows, and its outcome wins; what went out may go out again.
            logger.warning(
                "round %s: %s outcomes not written, their lease ran out", batch.lease, len(outcomes) - written
            )

    @staticmethod
    def count(
        batch: Round, outcomes: dict[int, Outcome], held: set[int], sent_groups: dict[tuple, list]
    ) -> None:
        """The round's status changes into its mailings' counts (mailings in id order, so two
        workers never wait for each other's rows in opposite orders)."""
        by_id = batch.by_id
        changes: dict[int, Counter] = {}
        for msg_id in held:
            status = outcomes[msg_id].status
            change = changes.setdefault(by_id[msg_id].mailing_id, Counter())
            change[MessageStatus.PENDING] -= 1
            change[status] += 1
            why = outcomes[msg_id].fields.get("last_error")
            if why == NO_CONSENT_WHY:
                change["no_consent"] += 1
            elif why == CAP_WHY:
                change["cap_expired"] += 1
        spans: dict[int, list] = {}
        minutes: dict[int, Counter] = {}
        by_text: Counter = Counter()
        parts_by_text: Counter = Counter()
        by_operator: Counter = Counter()  # accepted per (mailing, operator code): receipts' split
        for (_, text_id), (at, sent_ids) in sent_groups.items():
            for msg_id in sent_ids:
                if msg_id in held:
                    mailing = batch.mailings[by_id[msg_id].mailing_id]
                    span = spans.setdefault(mailing.pk, [at, at])
                    span[0], span[1] = min(span[0], at), max(span[1], at)
                    minutes.setdefault(mailing.pk, Counter())[SentMinute.of(at)] += 1
                    by_text[text_id] += 1
                    by_operator[(mailing.pk, operator_code_of(by_id[msg_id].phone or ""))] += 1
                    personal = batch.personal.get(msg_id)
                    parts_by_text[text_id] += personal.parts if personal else mailing.sms_parts
        for mailing_id in sorted(changes):
            first, last = spans.get(mailing_id, (None, None))
            MailingCounts.add(mailing_id, changes[mailing_id], first, last, minutes.get(mailing_id))
        receipts.count_accepted(by_operator)
        for text_id in sorted(t for t in by_text if t):
            MailingText.objects.filter(pk=text_id).update(
                sent=F("sent") + by_text[text_id], parts_sent=F("parts_sent") + parts_by_text[text_id]
            )

    @staticmethod
    def keep_texts(batch: Round, outcomes: dict[int, Outcome], held: set[int]) -> None:
        """The texts the round's personal messages carried, for those the gateway accepted: the
        record of what each client got (a retry's text replaces an earlier attempt's)."""
        sent = [
            personal
            for msg_id, personal in batch.personal.items()
            if msg_id in held and outcomes[msg_id].status == MessageStatus.SENT
        ]
        if sent:
            PersonalText.objects.bulk_create(
                sent, update_conflicts=True, unique_fields=["message"], update_fields=["text", "parts"]
            )

    @staticmethod
    def cap_clients(batch: Round, outcomes: dict[int, Outcome], held: set[int]) -> None:
        """Clients whose day or week a message sent in this round filled (MAILER_FREQUENCY_CAP):
        held until it ends, which the audience preview counts."""
        by_until: dict[datetime, list[int]] = {}
        for msg_id, until in batch.fills.items():
            if msg_id in held and outcomes[msg_id].status == MessageStatus.SENT:
                by_until.setdefault(until, []).append(batch.by_id[msg_id].client_id)
        for until, ids in sorted(by_until.items()):
            Client.objects.filter(
                Q(capped_until__isnull=True) | Q(capped_until__lt=until), pk__in=ids
            ).update(capped_until=until)

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
