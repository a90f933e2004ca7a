"""The frequency cap at send time (MAILER_FREQUENCY_CAP, e.g. 2/day,5/week): how many advertising
messages one client may get per day and per week of their local time, across all mailings.

A round reads, for its clients, what they were sent (advertising accepted by the gateway in the
last two days, eight with a weekly cap) and what is in flight for them elsewhere (advertising
messages another round holds a lease on), in one query, and `Tally.admit` counts each message it
lets go. Messages another round holds count as sent: two senders claiming one client's messages of two mailings at the same moment
each see the other's lease (a claim commits before its round decides), so at worst both wait a few
seconds (BUSY_RETRY) and one goes; never both. A message over the cap waits until the period that
is full ends (the client's local midnight, or Monday's), or expires if that is after its mailing's
end. A message that fills a period gives its client `capped_until`, which the audience preview
counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from mailer.models import MailingKind, Message, MessageStatus
from mailer.windows import zone

# Long enough to hold the start of any client's local day or week, whatever their zone.
LOOK_BACK = {"day": timedelta(days=2), "week": timedelta(days=8)}
# A message held only by messages in flight elsewhere is tried again after this.
BUSY_RETRY = timedelta(seconds=5)


def period_start(now: datetime, tz_name: str, period: str) -> datetime:
    """The start of the client's local day or week (Monday) that `now` is in."""
    local = now.astimezone(zone(tz_name))
    day = local.date() - timedelta(days=local.weekday() if period == "week" else 0)
    return datetime.combine(day, datetime.min.time(), tzinfo=zone(tz_name))


def period_end(now: datetime, tz_name: str, period: str) -> datetime:
    start = period_start(now, tz_name, period)
    length = 7 if period == "week" else 1
    # Midnight a day or a week later, as the wall clock has it (DST: 23 or 25 hours).
    return datetime.combine(start.date() + timedelta(days=length), start.time(), tzinfo=start.tzinfo)


@dataclass
class Tally:
    """The round's view of its clients' advertising messages: sent (their times) and in flight."""

    cap: dict[str, int]
    sent: dict[int, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    busy: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # A round's clients share a few zones: each zone's day and week are worked out once.
    periods: dict[tuple[datetime, str, str], tuple[datetime, datetime]] = field(default_factory=dict)

    @classmethod
    def load(cls, cap: dict[str, int], client_ids: set[int], lease: str, now: datetime) -> Tally:
        """For the round that holds `lease`: its own messages are the ones it decides on."""
        tally = cls(cap)
        # The clients as plain parameters: a round's 500 ids through Django's per-value preparation
        # of a foreign key's `__in` took half of this query's time.
        ids = sorted(client_ids)
        quote = connection.ops.quote_name
        column = f"{quote(Message._meta.db_table)}.{quote(Message._meta.get_field('client').column)}"
        among = RawSQL(f"{column} IN ({', '.join(['%s'] * len(ids))})", ids, BooleanField())
        rows = (
            Message.objects.filter(among, mailing__kind=MailingKind.ADVERTISING)
            .filter(
                Q(status=MessageStatus.SENT, sent_at__gte=now - max(LOOK_BACK[period] for period in cap))
                | (Q(status=MessageStatus.PENDING, locked_until__gt=now) & ~Q(locked_by=lease))
            )
            .order_by()  # the rows are tallied, not listed: no sort
            .values_list("client_id", "status", "sent_at")
        )
        for client_id, status, sent_at in rows:
            if status == MessageStatus.SENT:
                tally.sent[client_id].append(sent_at)
            else:
                tally.busy[client_id] += 1
        return tally

    def admit(self, client_id: int, tz_name: str, now: datetime) -> tuple[datetime | None, datetime | None]:
        """Whether one more message may go to the client now: (None, when it fills a period, if it
        does) and it is counted; else (when the cap allows the next, None)."""
        sent = self.sent[client_id]
        until = None
        fills = None
        for period, most in self.cap.items():
            start, end = self.period(now, tz_name, period)
            done = sum(1 for at in sent if at >= start)
            if done >= most:
                until = max(until or now, end)
            elif done + self.busy[client_id] >= most:
                until = max(until or now, now + BUSY_RETRY)
            elif done + 1 >= most:
                fills = max(fills or now, end)
        if until is not None:
            return until, None
        sent.append(now)
        return None, fills

    def period(self, now: datetime, tz_name: str, period: str) -> tuple[datetime, datetime]:
        """The start and end of the client's local day or week that `now` is in."""
        key = (now, tz_name, period)
        if key not in self.periods:
            self.periods[key] = (period_start(now, tz_name, period), period_end(now, tz_name, period))
        return self.periods[key]
