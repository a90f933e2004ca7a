"""Statistics of mailings: counts of messages by status, the sending rate and the ETA, in a
constant number of queries.

Used by the REST API, the dashboard and the daily report, so all three always agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from mailer.models import Mailing, Message, MessageStatus

STATUSES = [s.value for s in MessageStatus]
# Below this span between the first and the last message sent there is no rate to speak of
# (two messages a millisecond apart are not 120,000 a minute).
MIN_RATE_SPAN = timedelta(seconds=10)


def with_counts(mailings: QuerySet[Mailing]) -> QuerySet[Mailing]:
    """Annotate each mailing with `<status>_count` for every status and `total_count`: one query."""
    counts = {f"{status}_count": Count("messages", filter=Q(messages__status=status)) for status in STATUSES}
    return mailings.annotate(total_count=Count("messages"), **counts)


def counts_of(mailing: Mailing) -> dict[str, int]:
    """Counts by status (every status present, zeros included) plus `total`, for one mailing."""
    rows = Message.objects.filter(mailing=mailing).values_list("status").annotate(n=Count("id"))
    counts = dict.fromkeys(STATUSES, 0) | dict(rows)
    counts["total"] = sum(counts[s] for s in STATUSES)
    return counts


def totals(mailings: QuerySet[Mailing]) -> dict[str, int]:
    """Counts by status over all messages of the given mailings: one query."""
    rows = Message.objects.filter(mailing__in=mailings).values_list("status").annotate(n=Count("id"))
    counts = dict.fromkeys(STATUSES, 0) | dict(rows)
    counts["total"] = sum(counts[s] for s in STATUSES)
    return counts


def per_minute(sent: int, first: datetime | None, last: datetime | None) -> float | None:
    """The sending rate: messages per minute from the first message sent to the last."""
    if not sent or first is None or last is None or last - first < MIN_RATE_SPAN:
        return None
    return round(sent / ((last - first).total_seconds() / 60), 1)


def timing(mailing: Mailing) -> dict[str, datetime | float | None]:
    """When the first and last message left, and the sending rate in messages per minute."""
    span = Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).aggregate(
        first=Min("sent_at"), last=Max("sent_at"), n=Count("id")
    )
    return {
        "started_at": mailing.started_at,
        "finished_at": mailing.finished_at,
        "first_sent_at": span["first"],
        "last_sent_at": span["last"],
        "messages_per_minute": per_minute(span["n"], span["first"], span["last"]),
    }


def rates(mailing_ids: list[int]) -> dict[int, float | None]:
    """`timing(...)["messages_per_minute"]` of several mailings at once: one query."""
    spans = (
        Message.objects.filter(mailing__in=mailing_ids, status=MessageStatus.SENT)
        .values_list("mailing")
        .annotate(first=Min("sent_at"), last=Max("sent_at"), n=Count("id"))
    )
    return {mailing_id: per_minute(n, first, last) for mailing_id, first, last, n in spans}


def progress(mailing: Mailing, counts: dict[str, int], rate: float | None) -> dict[str, Any]:
    """Progress bar segments (percent of all messages), and when what is still pending should
    be sent at `rate` messages per minute."""
    total = counts["total"]
    segments = [
        (status, round(100 * counts[status] / total, 1) if total else 0)
        for status in ("sent", "failed", "expired", "cancelled")
    ]
    eta = None
    if counts["pending"] and rate:
        eta = timezone.now() + timedelta(minutes=counts["pending"] / rate)
    return {
        "mailing": mailing,
        "counts": counts,
        "segments": segments,
        "percent": round(100 * (total - counts["pending"]) / total) if total else 0,
        "per_minute": rate,
        "eta": eta,
    }
