"""Delivery receipts: what became of the messages the gateway accepted (README "Delivery receipts").

- A gateway posts them to /api/v1/gateway/receipts/ (mailer/api/views.py), checked there whole:
  a batch with a bad item is refused, nothing of it written. Receipts for ids we never gave are
  counted and logged there, and go no further.
- `take` writes the rest down where MAILER_RECEIPT_SPOOL says, as clicks are (mailer/links.py): a
  spool file of the web process's own (SQLite's default: a receipt never waits for the engine's
  write lock), a SpooledReceipt row (PostgreSQL's default), or, empty, applied at once.
- A sender applies them every tick (`fold`, `apply`): each message keeps the receipt with the
  latest time (a repeated or an older one changes nothing, so applying one twice is harmless and
  the order they come in does not matter), and the counts move with it in the same transaction:
  the mailing's delivered and not delivered, per operator code, per reason, per minute, and each
  client's run of undelivered messages (MAILER_UNDELIVERED_LIMIT).
- A receipt can come before the engine has written down that the gateway accepted its message: it
  waits (in the spool) until it has, for at most WAIT_LIMIT. One for a message not accepted (failed,
  expired, cancelled) or deleted meanwhile (retention) is logged and dropped.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from mailer import bulk, metrics, spool
from mailer.logging import access_logger
from mailer.models import (
    NO_ANSWER,
    AuditEntry,
    Client,
    DeliveryMinute,
    DeliveryReason,
    DeliveryStatus,
    MailingCounts,
    Message,
    MessageStatus,
    OperatorCounts,
    SentMinute,
    SpooledReceipt,
    delivery_kind,
)
from mailer.monitoring import count_request

logger = logging.getLogger("mailer.receipts")

# Receipts one request may carry, and one transaction applies (short, so that on SQLite a
# staff member's write waits for one of them at most, some tens of milliseconds).
MAX_BATCH = 1000
FOLD_BATCH = 1000
# And between two of them a pause, so that a write waiting for the lock gets it (SQLite's busy
# handler polls: back-to-back transactions would leave it waiting for all of them).
FOLD_PAUSE = 0.02
# How long a receipt waits for its message to be written down as accepted.
WAIT_LIMIT = timedelta(hours=1)
# A receipt's time may run ahead of ours by a clock's error, not by more; nor be older than the
# messages a gateway still reports on.
FUTURE_LIMIT = timedelta(minutes=10)
PAST_LIMIT = timedelta(days=365)
ERROR_MAX = DeliveryReason._meta.get_field("error").max_length


@dataclass(frozen=True, slots=True)
class Receipt:
    id: int
    status: str
    at: datetime
    error: str = ""

    def line(self) -> str:
        return json.dumps([self.id, self.status, self.at.isoformat(), self.error], ensure_ascii=False)

    @classmethod
    def from_line(cls, line: str) -> Receipt:
        message_id, status, at, error = json.loads(line)
        return cls(int(message_id), status, parse_datetime(at), error)


# Checking and taking them (the API's view and the WSGI fast path alike) ---------------------------


def token_ok(authorization: str) -> bool:
    """Whether an Authorization header carries MAILER_RECEIPT_TOKEN (in constant time)."""
    scheme, _space, given = authorization.partition(" ")
    expected = settings.MAILER_RECEIPT_TOKEN
    return (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), expected.encode())
    )


def check(item) -> tuple[Receipt | None, dict[str, list[str]]]:
    """One receipt as posted: the Receipt, or what is wrong with it by field (in the active language)."""
    if not isinstance(item, dict):
        return None, {"non_field_errors": [_("Expected an object with id, status and at.")]}
    errors: dict[str, list[str]] = {}
    message_id, status, at, error = (item.get(name) for name in ("id", "status", "at", "error"))
    if type(message_id) is not int or not 0 < message_id < 2**63:
        errors["id"] = [_("The id of a message we sent: a whole number from 1.")]
    if status not in DeliveryStatus.values:
        errors["status"] = [_("One of: %(statuses)s.") % {"statuses": ", ".join(DeliveryStatus.values)}]
    moment = _moment(at)
    if isinstance(moment, str):
        errors["at"] = [moment]
    if error is None:
        error = ""
    elif not isinstance(error, str):
        errors["error"] = [_("The gateway's words, as a string.")]
    elif "\x00" in error or any("\ud800" <= c <= "\udfff" for c in error):
        errors["error"] = [_("Null characters and lone surrogates can't be stored.")]
    if errors:
        return None, errors
    return Receipt(message_id, status, moment, error[:ERROR_MAX]), {}


def _moment(at) -> datetime | str:
    """A receipt's time, or why it is not one."""
    try:
        moment = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        moment = None
    if moment is None:
        return _("A time in ISO 8601 with its offset: 2026-12-01T09:00:07Z.")
    if moment.tzinfo is None:
        return _("Give the time with its offset: Z or +03:00.")
    now = timezone.now()
    if moment > now + FUTURE_LIMIT:
        return _("This time is in the future.")
    if moment < now - PAST_LIMIT:
        return _("This time is more than a year ago.")
    return moment


def receive(body) -> tuple[int, dict]:
    """A parsed request body (one receipt or a list) checked whole and, if good, taken: the
    answer's status and body. Receipts for ids we never sent are counted and logged, not taken."""
    many = isinstance(body, list)
    if many and not 0 < len(body) <= MAX_BATCH:
        detail = _("Send from 1 to %(max)s receipts at a time; this request has %(n)s.")
        return 400, {"detail": detail % {"max": MAX_BATCH, "n": len(body)}}
    checked = [check(item) for item in (body if many else [body])]
    if not many and checked[0][1]:
        return 400, checked[0][1]
    if bad := {str(i): errors for i, (_r, errors) in enumerate(checked) if errors}:
        detail = _("Not valid: items %(items)s (counted from 0). Nothing of this batch was written.")
        return 400, {"detail": detail % {"items": ", ".join(bad)}, "items": bad}
    given = [receipt for receipt, _e in checked]
    if settings.MAILER_RECEIPT_SPOOL == spool.DATABASE and connection.vendor == "postgresql":
        known = _spool_known(given)
    else:
        known = _known({r.id for r in given})
        take([r for r in given if r.id in known])
    unknown = sorted({r.id for r in given} - known)
    metrics.RECEIPTS.labels("taken").inc(sum(r.id in known for r in given))
    if unknown:
        metrics.RECEIPTS.labels("unknown").inc(sum(r.id not in known for r in given))
        logger.warning(
            "%s receipts for messages we don't know (ids %s)",
            len(unknown),
            _some(unknown),
        )
    return 200, {"received": len(given), "unknown": len(unknown), "unknown_ids": unknown[:100]}


def _some(ids: list[int]) -> str:
    """Ids for a log line: the first 20."""
    return ", ".join(map(str, ids[:20])) + (" …" if len(ids) > 20 else "")


def first(django: Callable) -> Callable:
    """The WSGI application (mailer/wsgi.py) around Django's, for the gateway's receipts, which
    come as fast as messages go, one request each from some gateways: a POST to RECEIPTS_PATH with
    the token and a JSON body is checked and taken here (`receive`) without Django's middleware
    and DRF, a third of the time. Only a 200 is answered here: anything else (no or another token,
    a body that is not JSON or too big, a bad receipt) goes on to Django, whose view answers it
    with the same words (ReceiptsView), in the reader's language and logged as any request. The
    access line of a 200 is at DEBUG, as a click's; the metrics count it as view "api:receipts"."""

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] != "POST" or environ.get("PATH_INFO") != RECEIPTS_PATH:
            return django(environ, start_response)
        started = time.perf_counter()
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if (
            not token_ok(environ.get("HTTP_AUTHORIZATION", ""))
            or not 0 < length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        ):
            return django(environ, start_response)
        raw = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(raw)  # for Django, if it answers after all
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return django(environ, start_response)
        connection.close_if_unusable_or_obsolete()  # as Django does at each request's start
        try:
            status, answer = receive(body)
        except DatabaseError:
            status = 0  # Django's view tries again, and answers as for any request
        if status != 200:
            environ["wsgi.input"].seek(0)
            return django(environ, start_response)
        out = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        count_request("POST", 200, "api:receipts", started)
        access_logger.debug(
            "POST %s 200", RECEIPTS_PATH, extra={"method": "POST", "path": RECEIPTS_PATH, "status": 200}
        )
        return [out]

    return application


RECEIPTS_PATH = "/api/v1/gateway/receipts/"
_MESSAGES = Message._meta.db_table
_KNOWN = f"SELECT id FROM {_MESSAGES} WHERE id IN ({{ids}})"


def _known(ids: set[int]) -> set[int]:
    """Which of `ids` are messages of ours: one statement, written out (the ORM took longer to build
    it than the database to run it)."""
    return {row[0] for row in bulk.fetch(_KNOWN.format(ids=", ".join(["%s"] * len(ids))), list(ids))}


# On PostgreSQL receipts are taken in one statement: those of our messages written down
# (SpooledReceipt), and their ids returned; one round trip, one commit, as a click is.
_SPOOL_KNOWN = (
    "WITH given (message_id, status, at, error) AS (VALUES {values}), "
    f"known AS (SELECT given.* FROM given JOIN {_MESSAGES} m ON m.id = given.message_id), "
    f"spooled AS (INSERT INTO {SpooledReceipt._meta.db_table} (message_id, status, at, error) "
    "SELECT message_id, status, at, error FROM known) "
    "SELECT DISTINCT message_id FROM known"
)


def _spool_known(given: list[Receipt]) -> set[int]:
    values = ", ".join(["(%s::bigint, %s, %s::timestamptz, %s)"] * len(given))
    params = [value for r in given for value in (r.id, r.status, r.at, r.error)]
    return {row[0] for row in bulk.fetch(_SPOOL_KNOWN.format(values=values), params)}


def take(receipts: list[Receipt]) -> None:
    """Write checked receipts down for a sender to apply (MAILER_RECEIPT_SPOOL), all or none."""
    where = settings.MAILER_RECEIPT_SPOOL
    if not receipts:
        return
    if where == spool.DATABASE:
        SpooledReceipt.objects.bulk_create(
            [SpooledReceipt(message_id=r.id, status=r.status, at=r.at, error=r.error) for r in receipts]
        )
    elif where:
        spool.append(where, [r.line() for r in receipts])
    else:
        apply(receipts)


def fold(now: float | None = None) -> int:
    """A sender's, every tick: apply the receipts written down. Returns how many were applied."""
    where = settings.MAILER_RECEIPT_SPOOL
    if where == spool.DATABASE:
        return _fold_table()
    if not where:
        return 0
    applied = 0
    for path in spool.ready(where, now):
        try:
            receipts = [Receipt.from_line(line) for line in spool.lines(path) if line]
        except FileNotFoundError:
            continue  # the other sender took it meanwhile
        except (ValueError, TypeError) as e:
            logger.error("%s: not a file of receipts (%s); left for a person to look at", path.name, e)
            path.rename(path.with_suffix(".bad"))
            continue
        for at in range(0, len(receipts), FOLD_BATCH):
            chunk = receipts[at : at + FOLD_BATCH]
            if applied:
                time.sleep(FOLD_PAUSE)
            waiting = apply(chunk)
            applied += len(chunk) - len(waiting)
            if waiting:
                spool.append(where, [r.line() for r in waiting])  # taken in again at a later tick
        path.unlink(missing_ok=True)
    spool.set_aside(where)
    return applied


def _fold_table() -> int:
    """Apply SpooledReceipt's rows, FOLD_BATCH at a time, each batch deleted in the transaction
    that applies it (but those that wait); rows another sender is applying are left to it."""
    applied, after = 0, 0
    while True:
        if applied:
            time.sleep(FOLD_PAUSE)
        with transaction.atomic():
            rows = list(
                SpooledReceipt.objects.select_for_update(skip_locked=True)
                .filter(id__gt=after)
                .order_by("id")
                .values_list("id", "message_id", "status", "at", "error")[:FOLD_BATCH]
            )
            if not rows:
                return applied
            receipts = {row_id: Receipt(*rest) for row_id, *rest in rows}
            waiting = set(apply(list(receipts.values())))
            SpooledReceipt.objects.filter(
                id__in=[row_id for row_id, r in receipts.items() if r not in waiting]
            ).delete()
        applied += len(rows) - len(waiting)
        after = rows[-1][0]


def apply(receipts: list[Receipt]) -> list[Receipt]:
    """Apply receipts in one transaction; returns those whose messages are not yet written down
    as accepted (they wait; older than WAIT_LIMIT they are dropped)."""
    latest: dict[int, Receipt] = {}
    for r in receipts:
        if r.id not in latest or r.at > latest[r.id].at:
            latest[r.id] = r
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Message.objects.filter(id__in=latest, status=MessageStatus.SENT)
            .select_for_update(of=("self",))
            .order_by("id")
            .values_list(
                "id",
                "mailing_id",
                "client_id",
                "client__operator_code",
                "delivery_status",
                "delivered_at",
                "delivery_error",
            )
        )
        waiting = _not_accepted(latest, {row[0] for row in rows}, now)
        changed, counts = [], _Counts()
        for message_id, mailing_id, client_id, operator, old_status, old_at, old_error in rows:
            r = latest[message_id]
            if old_at is not None and r.at <= old_at:
                continue  # a repeat, or older than the receipt it has
            changed.append(r)
            counts.move(mailing_id, operator or "", client_id, (old_status, old_at, old_error), r)
        if changed:
            stamp = connection.ops.adapt_datetimefield_value
            bulk.execute(_RECEIVED, [(r.id, r.status, stamp(r.at), r.error) for r in changed])
            counts.write(now)
    return [r for r in receipts if r.id in waiting]


def _not_accepted(latest: dict[int, Receipt], accepted: set[int], now: datetime) -> set[int]:
    """Of the receipts' messages not written down as accepted, those that wait (pending, the
    receipt not older than WAIT_LIMIT); the others are logged, and dropped."""
    rest = set(latest) - accepted
    if not rest:
        return set()
    status = dict(Message.objects.filter(id__in=rest).values_list("id", "status"))
    waiting = {i for i in rest if status.get(i) == MessageStatus.PENDING and latest[i].at > now - WAIT_LIMIT}
    if dropped := sorted(rest - waiting):
        logger.warning(
            "%s receipts dropped: their messages were not accepted by the gateway, or are gone (ids %s)",
            len(dropped),
            _some(dropped),
        )
    return waiting


# Each message its own receipt, in one statement for many (bulk.py says why not bulk_update).
_RECEIVED = (
    "WITH v (id, status, at, error) AS (VALUES {values}) "
    f"UPDATE {_MESSAGES} SET delivery_status = v.status, delivered_at = v.at, delivery_error = v.error "
    f"FROM v WHERE {_MESSAGES}.id = v.id"
)


def count_accepted(by_operator: Counter) -> None:
    """The engine's, in the transaction that records a round: {(mailing id, operator code): n}
    messages accepted by the gateway."""
    OperatorCounts.add({key: Counter(accepted=n) for key, n in by_operator.items()})


class _Counts:
    """What a batch of receipts changes in the counts, gathered and then written in a few statements,
    in one order (mailing, then the rest), so two senders never wait for each other in a circle."""

    def __init__(self) -> None:
        self.mailings: dict[int, Counter] = defaultdict(Counter)
        self.operators: dict[tuple[int, str], Counter] = defaultdict(Counter)
        self.reasons: Counter = Counter()
        self.minutes: Counter = Counter()
        # Per client, in message order: True for a number that did not answer, False for delivered.
        self.answers: dict[int, list[bool]] = defaultdict(list)

    def move(self, mailing_id: int, operator: str, client_id: int | None, old: tuple, new: Receipt) -> None:
        old_status, old_at, old_error = old
        for status, at, error, step in (
            (old_status, old_at, old_error, -1),
            (new.status, new.at, new.error, 1),
        ):
            if not (was := delivery_kind(status or "")):
                continue
            self.mailings[mailing_id][was] += step
            self.operators[(mailing_id, operator)][was] += step
            if was == "delivered":
                self.minutes[(mailing_id, SentMinute.of(at))] += step
            else:
                self.reasons[(mailing_id, status, error)] += step
        if client_id is not None and new.status != old_status:
            if new.status == DeliveryStatus.DELIVERED:
                self.answers[client_id].append(False)
            elif new.status in NO_ANSWER and old_status not in NO_ANSWER:
                self.answers[client_id].append(True)

    def write(self, now: datetime) -> None:
        stamp = connection.ops.adapt_datetimefield_value
        for mailing_id, change in sorted(self.mailings.items()):
            MailingCounts.add(mailing_id, change)
        OperatorCounts.add(self.operators)
        reasons = [(m, s, e, n) for (m, s, e), n in sorted(self.reasons.items()) if n]
        bulk.add(DeliveryReason, ("mailing_id", "status", "error"), ("messages",), reasons)
        minutes = [(m, stamp(at), n) for (m, at), n in sorted(self.minutes.items()) if n]
        bulk.add(DeliveryMinute, ("mailing_id", "minute"), ("delivered",), minutes)
        self.write_answers(now)

    def write_answers(self, now: datetime) -> None:
        """Each client's run of undelivered messages, and those it leaves out from now on."""
        limit = settings.MAILER_UNDELIVERED_LIMIT
        if not limit or not self.answers:
            return
        clients = list(
            Client.objects.filter(pk__in=self.answers)
            .order_by("pk")
            .select_for_update()
            .only("pk", "phone", "undelivered_in_row", "undeliverable_at")
        )
        for client in clients:
            run = client.undelivered_in_row
            for silent in self.answers[client.pk]:
                run = min(run + 1, 32767) if silent else 0
            client.undelivered_in_row = run
        Client.objects.bulk_update(clients, ["undelivered_in_row"], batch_size=500)
        gone = [c for c in clients if c.undelivered_in_row >= limit and c.undeliverable_at is None]
        if gone:
            Client.objects.filter(pk__in=[c.pk for c in gone]).update(undeliverable_at=now)
            for client in gone:
                AuditEntry.record(
                    None,
                    "undeliverable",
                    client,
                    {"undeliverable_at": [None, now.isoformat()]},
                    via="engine",
                )
            logger.info(
                "%s clients left out of audiences: their last %s messages came back undelivered",
                len(gone),
                limit,
            )
