"""When things happen: mailings start, their audience becomes Message rows, and they end.

`tick(now)` is called about once a second by every sender (engine.worker.run_sender), so a mailing
starts within a second or two of `start_at` although django-q2's own scheduler only wakes every
~30 s. A mailing starts and finishes through its model (Mailing.start, Mailing.finish): a
conditional UPDATE with its audit entry, so concurrent ticks in several workers are safe.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from mailer import bulk, links, receipts
from mailer.models import (
    CANCELLED_WHY,
    ENDED_WHY,
    NO_CONSENT_WHY,
    NO_WINDOW_WHY,
    OPEN_STATES,
    QUIET_HOURS_WHY,
    UNMATCHED_WHY,
    Mailing,
    MailingCounts,
    MailingState,
    Message,
    MessageStatus,
)
from mailer.windows import opens_at

logger = logging.getLogger("mailer.scheduling")

# Audience resolution writes chunks of clients as messages, each in its own transaction. The first
# is small, so the first messages go out at once while the rest is resolved.
RESOLVE_FIRST = 500
RESOLVE_CHUNK = 5000
# A sender resolves for about this long at a time, between its steps of sending.
RESOLVE_SLICE = 0.5
# A resolver renews its lease at every chunk; one that died is taken over after this.
RESOLVE_LEASE = timedelta(seconds=60)
# The leases this process holds (mailing id -> its lease_until): a resolver cut off by a database
# fault takes its own lease back at the next tick instead of waiting for it to run out.
_held: dict[int, datetime] = {}


@dataclass
class Resolution:
    """One audience being resolved by this process: where it is."""

    mailing: Mailing
    version: int
    now: datetime  # when it began: the messages' first attempts are reckoned from it
    last_id: int = 0  # the last client id written
    added: int = 0
    # Per time zone: the status, first attempt and reason its clients' messages are written with.
    by_zone: dict[str, tuple[str, str, str]] = field(default_factory=dict)


# The resolutions this process has begun and not finished, by mailing id.
_resolving: dict[int, Resolution] = {}


def first_attempt_at(mailing: Mailing, tz_name: str, now: datetime) -> datetime | None:
    """When a client in `tz_name` may first get the mailing; None if never before its end."""
    at = max(now, mailing.start_at)
    if spans := mailing.send_windows():
        at = opens_at(at, tz_name, spans)
    return at if at is not None and at < mailing.end_at else None


def closed_why(mailing: Mailing, tz_name: str, now: datetime) -> str:
    """Why a client in `tz_name` gets nothing before the end: the mailing's own window, or quiet
    hours on top of it."""
    if mailing.has_window:
        own = opens_at(max(now, mailing.start_at), tz_name, [(mailing.window_start, mailing.window_end)])
        if own is None or own >= mailing.end_at:
            return NO_WINDOW_WHY
    return QUIET_HOURS_WHY


def tick(now: datetime | None = None) -> float | None:
    """Start what is due, go on with audiences, end what is over, fold clicks and receipts.
    Returns in how many seconds the next scheduled mailing starts, if that is soon (None if
    nothing is scheduled within TICK_AHEAD), so the sender ticks again right then."""
    now = now or timezone.now()
    start_due(now)
    for mailing in Mailing.objects.filter(
        state=MailingState.RUNNING, resolved_version__lt=F("audience_version")
    ):
        resolve_audience(mailing, now, RESOLVE_SLICE)  # begins (the first chunk), or goes on
    finish_ended(now)
    links.fold()  # the clicks the web spooled (MAILER_CLICK_SPOOL), counted
    receipts.fold()  # the delivery receipts the web took (MAILER_RECEIPT_SPOOL), applied
    return next_start(now)


TICK_AHEAD = timedelta(seconds=2)


def next_start(now: datetime) -> float | None:
    """Seconds until the next scheduled mailing's start_at, if within TICK_AHEAD."""
    soon = (
        Mailing.objects.filter(Mailing.due_to_start(now + TICK_AHEAD), start_at__gt=now)
        .order_by("start_at")
        .values_list("start_at", flat=True)
        .first()
    )
    return (soon - now).total_seconds() if soon else None


def resolve_more() -> None:
    """Go on with the audiences this process is resolving, for about RESOLVE_SLICE: the sender
    calls this between its steps, so the first messages are sent while the rest is resolved."""
    for resolution in list(_resolving.values()):
        resolve_audience(resolution.mailing, resolution.now, RESOLVE_SLICE)


def start_due(now: datetime) -> list[int]:
    """Start scheduled mailings whose time has come (Mailing.start). Returns their ids."""
    started = []
    for mailing in Mailing.objects.filter(Mailing.due_to_start(now)):
        if mailing.weigh_at_start():
            logger.info(
                "mailing_id=%s grew past MAILER_APPROVAL_ABOVE: it waits for approval",
                mailing.pk,
                extra={"mailing_id": mailing.pk},
            )
            continue
        if mailing.start(now):
            logger.info("mailing_id=%s started", mailing.pk, extra={"mailing_id": mailing.pk})
            started.append(mailing.pk)
    return started


def resolve_audience(mailing: Mailing, now: datetime, seconds: float | None = None) -> int:
    """Turn the mailing's matching clients into Message rows, in chunks; returns the rows added.

    With `seconds`, it stops after about that long and goes on from there at the next call; the
    first call writes only a small first chunk (RESOLVE_FIRST), to be sent at once. Without, it
    resolves the whole audience.

    Idempotent: the unique (mailing, client) constraint and ignore_conflicts mean a second run, or
    two workers at once, never duplicate a message. A lease keeps two workers from doing the work
    twice; if the holder dies the lease runs out and another worker takes over, from the first
    client.
    """
    version = mailing.audience_version
    resolution = _resolving.get(mailing.pk)
    if resolution is not None and resolution.version != version:
        resolution = None  # the filter changed meanwhile: from the first client again
    if not _lease(mailing.pk, version, timezone.now() if resolution else now):
        _taken_over(mailing.pk)
        return 0
    if resolution is None:
        mailing.refresh_from_db()
        resolution = _resolving[mailing.pk] = Resolution(mailing, version, now)
    added_before = resolution.added
    until = time.monotonic() + seconds if seconds is not None else None
    first = until is not None and not resolution.last_id
    size = RESOLVE_FIRST if first else RESOLVE_CHUNK
    while _resolve_chunk(resolution, size) == size:
        size = RESOLVE_CHUNK
        if first or (until is not None and time.monotonic() >= until):
            return resolution.added - added_before  # goes on at the next call, under the lease
        if not _lease(mailing.pk, version, timezone.now()):
            _taken_over(mailing.pk)
            return resolution.added - added_before
    _resolved(resolution)
    return resolution.added - added_before


def _taken_over(mailing_id: int) -> None:
    """Another worker holds the resolution's lease: this process's resolution, if any, stops."""
    if _resolving.pop(mailing_id, None):
        logger.warning(
            "mailing_id=%s audience resolution taken over", mailing_id, extra={"mailing_id": mailing_id}
        )


def _resolve_chunk(resolution: Resolution, size: int) -> int:
    """The next `size` matching clients as messages, in one transaction; returns the clients read."""
    mailing, now, by_zone = resolution.mailing, resolution.now, resolution.by_zone
    clients = mailing.matching_clients().order_by("id").values_list("id", "timezone")
    chunk = list(clients.filter(id__gt=resolution.last_id)[:size])
    if not chunk:
        return 0
    stamp = connection.ops.adapt_datetimefield_value
    created = stamp(now)
    rows = []
    for client_id, tz_name in chunk:
        if tz_name not in by_zone:
            at = first_attempt_at(mailing, tz_name, now)
            # The window never opens before the end: say so now rather than keep it queued.
            by_zone[tz_name] = (
                (MessageStatus.PENDING, stamp(at), "")
                if at
                else (MessageStatus.EXPIRED, stamp(mailing.end_at), closed_why(mailing, tz_name, now))
            )
        rows.append((client_id, *by_zone[tz_name]))
    with transaction.atomic():
        # Only the rows new to the table come back: a client already there is skipped (one that
        # another resolver of the mailing is writing too, once that one commits), so each message
        # is counted exactly once, and the counts row is locked only for the count, at the end.
        added = Counter(status for (status,) in _insert_new(mailing.pk, created, rows))
        MailingCounts.add(mailing.pk, added)
    resolution.last_id = chunk[-1][0]  # once committed: a chunk cut off is done again
    resolution.added += added.total()
    return len(chunk)


def _insert_new(mailing_id: int, created: object, rows: list[tuple]) -> list[tuple]:
    """Insert the messages (client id, status, next attempt, last error) that are not there yet;
    the status of each new one. On PostgreSQL the rows go as one array per column: the driver
    quotes a few arrays much faster than thousands of separate parameters."""
    if connection.vendor == "postgresql":
        return bulk.fetch(_NEW_MESSAGES_PG, [mailing_id, created, *map(list, zip(*rows, strict=True))])
    return bulk.execute(_NEW_MESSAGES, [(mailing_id, created, *row, 0, "") for row in rows])


_NEW_COLUMNS = "(mailing_id, created_at, client_id, status, next_attempt_at, last_error, attempts, locked_by)"
_NEW_MESSAGES = (
    f"INSERT INTO {Message._meta.db_table} {_NEW_COLUMNS} VALUES {{values}} "
    "ON CONFLICT (mailing_id, client_id) DO NOTHING RETURNING status"
)
_NEW_MESSAGES_PG = (
    f"INSERT INTO {Message._meta.db_table} {_NEW_COLUMNS} SELECT %s, %s, *, 0, '' "
    "FROM UNNEST(%s::bigint[], %s::varchar[], %s::timestamptz[], %s::varchar[]) "
    "ON CONFLICT (mailing_id, client_id) DO NOTHING RETURNING status"
)


def _resolved(resolution: Resolution) -> None:
    """The whole audience is written: what a filter edit left out is cancelled, consent counted."""
    mailing, now, version = resolution.mailing, resolution.now, resolution.version
    if version > 1:
        # A filter edit: pending messages of clients who no longer match are not sent.
        dropped = (
            Message.objects.filter(mailing=mailing)
            .exclude(client__in=mailing.matching_clients())
            .settle_pending(now, MessageStatus.CANCELLED, UNMATCHED_WHY)
        )
        if dropped:
            logger.info(
                "mailing_id=%s filter changed: %s pending messages cancelled",
                mailing.pk,
                dropped,
                extra={"mailing_id": mailing.pk},
            )
    with transaction.atomic():
        # Who the filter matched but consent kept out, as of now, and whom it stopped at send time.
        MailingCounts.objects.select_for_update().get_or_create(mailing_id=mailing.pk)
        skipped = mailing.messages.filter(status=MessageStatus.CANCELLED, last_error=NO_CONSENT_WHY).count()
        MailingCounts.objects.filter(mailing_id=mailing.pk).update(
            no_consent=mailing.without_consent() + skipped
        )
    Mailing.objects.filter(pk=mailing.pk, resolve_lease_until=_held.pop(mailing.pk)).update(
        resolved_version=version, resolve_lease_until=None
    )
    _resolving.pop(mailing.pk, None)
    logger.info(
        "mailing_id=%s audience resolved: %s messages added (version %s)",
        mailing.pk,
        resolution.added,
        version,
        extra={"mailing_id": mailing.pk},
    )


def _lease(mailing_id: int, version: int, now: datetime) -> bool:
    """Take or renew the lease on resolving a mailing's audience: free, run out, or ours."""
    until = now + RESOLVE_LEASE
    free = Q(resolve_lease_until__isnull=True) | Q(resolve_lease_until__lt=now)
    if mailing_id in _held:
        free |= Q(resolve_lease_until=_held[mailing_id])
    taken = Mailing.objects.filter(free, pk=mailing_id, resolved_version__lt=version).update(
        resolve_lease_until=until
    )
    if taken:
        _held[mailing_id] = until
    else:
        _held.pop(mailing_id, None)
    return bool(taken)


def finish_ended(now: datetime) -> None:
    """Expire what is left of mailings whose end has passed, and finish mailings with nothing left."""
    # Messages that were in flight when their mailing was cancelled, and came back pending.
    Message.objects.filter(mailing__state=MailingState.CANCELLED).settle_pending(
        now, MessageStatus.CANCELLED, CANCELLED_WHY
    )
    for mailing in Mailing.objects.filter(state__in=OPEN_STATES, end_at__lte=now):
        # A leased message is in flight; its worker records it (its request ends before end_at).
        expired = mailing.messages.settle_pending(now, MessageStatus.EXPIRED, ENDED_WHY)
        if expired:
            logger.info(
                "mailing_id=%s ended: %s messages expired",
                mailing.pk,
                expired,
                extra={"mailing_id": mailing.pk},
            )
        _finish(mailing, now)
    # Running mailings whose audience is resolved and sent before their end.
    for mailing in Mailing.objects.filter(state=MailingState.RUNNING, resolved_version=F("audience_version")):
        _finish(mailing, now)


def _finish(mailing: Mailing, now: datetime) -> None:
    if mailing.finish(now):
        logger.info("mailing_id=%s finished", mailing.pk, extra={"mailing_id": mailing.pk})
