"""Statistics of mailings: counts of messages by status, in a constant number of queries.

Used by the REST API, the dashboard and the daily report, so all three always agree.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Max, Min, Q, QuerySet

from mailer.models import Mailing, Message, MessageStatus

STATUSES = [s.value for s in MessageStatus]


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


def timing(mailing: Mailing) -> dict[str, datetime | float | None]:
    """When the first and last message left, and the sending rate in messages per minute."""
    span = Message.objects.filter(mailing=mailing, status=MessageStatus.SENT).aggregate(
        first=Min("sent_at"), last=Max("sent_at"), n=Count("id")
    )
    per_minute = None
    if span["n"] and span["first"] and span["last"] and span["last"] > span["first"]:
        per_minute = round(span["n"] / ((span["last"] - span["first"]).total_seconds() / 60), 1)
    return {
        "started_at": mailing.started_at,
        "finished_at": mailing.finished_at,
        "first_sent_at": span["first"],
        "last_sent_at": span["last"],
        "messages_per_minute": per_minute,
    }
