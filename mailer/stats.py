"""Statistics of mailings: counts of messages by status, the sending rate and the ETA, read from
MailingCounts (kept with every status change), so their cost doesn't grow with the messages.

Used by the REST API, the dashboard and the daily report, so all three always agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from mailer.models import (
    CAP_HELD_WHY,
    DeliveryReason,
    Mailing,
    MailingCounts,
    MailingText,
    Message,
    MessageStatus,
    OperatorCounts,
)

STATUSES = [s.value for s in MessageStatus]
# What the guardrails kept from a mailing, counted on MailingCounts beside the statuses: clients
# left out (or messages cancelled) for want of consent, and messages expired by MAILER_FREQUENCY_CAP.
# (One mailing's messages waiting for the cap now are counted by their partial index: guards_of.)
GUARDS = ["no_consent", "cap_expired"]
# What its links earned (MailingCounts, kept as clicks are counted: mailer/links.py).
# And who left the mailings by its {unsubscribe} link.
CLICKS = ["clicks", "clickers", "unsubscribed"]
# What the gateway's delivery receipts said of the messages it accepted (mailer/receipts.py).
DELIVERY = ["delivered", "undelivered"]
# What reading statistics needs, whichever door (the dashboard's pages, the API): they are counts
# kept per mailing (MailingCounts), never the messages themselves.
PERMISSIONS = ("mailer.view_mailing",)
# Below this span between the first and the last message sent there is no rate to speak of
# (two messages a millisecond apart are not 120,000 a minute).
MIN_RATE_SPAN = timedelta(seconds=10)


def with_counts(mailings: QuerySet[Mailing]) -> QuerySet[Mailing]:
    """Annotate each mailing with `<status>_count` for every status, `total_count` (from its
    MailingCounts row) and `sms_sent`: one query, whatever the number of messages."""
    counts = {f"{status}_count": Coalesce(F(f"counts__{status}"), 0) for status in STATUSES}
    total = sum((F(f"counts__{status}") for status in STATUSES[1:]), F(f"counts__{STATUSES[0]}"))
    counts |= {f"{name}_count": Coalesce(F(f"counts__{name}"), 0) for name in (*GUARDS, *CLICKS, *DELIVERY)}
    return mailings.annotate(total_count=Coalesce(total, 0), sms_sent=_sms_sent(), **counts)


def _sms_sent() -> Coalesce:
    """SMS parts delivered (what the gateway bills): the parts of the messages sent with each of
    the mailing's texts (MailingText.parts_sent). A subquery, so it joins nothing to the query it annotates."""
    per_mailing = (
        MailingText.objects.filter(mailing=OuterRef("pk"))
        .order_by()
        .values("mailing")
        .annotate(n=Sum("parts_sent"))
        .values("n")
    )
    return Coalesce(Subquery(per_mailing), 0)


def sms_sent(mailings: QuerySet[Mailing]) -> int:
    """SMS parts delivered over all the given mailings: one query."""
    total = MailingText.objects.filter(mailing__in=mailings).aggregate(n=Sum("parts_sent"))["n"]
    return int(total or 0)


def counts_of(mailing: Mailing) -> dict[str, int]:
    """Counts by status (every status present, zeros included) plus `total`, for one mailing."""
    return _counts_row(mailing).as_dict()


def annotated_counts(mailing: Mailing) -> dict[str, int]:
    """`counts_of` for a mailing annotated by with_counts: the same dict, without a query."""
    counts = {status: getattr(mailing, f"{status}_count") for status in STATUSES}
    counts["total"] = mailing.total_count
    return counts


def guards_of(mailing: Mailing) -> dict[str, int]:
    """What the guardrails kept from one mailing (GUARDS), and its messages waiting for the
    frequency cap now (`cap_held`: a count of the rows in their partial index)."""
    row = _counts_row(mailing)
    held = Message.objects.filter(
        mailing=mailing, status=MessageStatus.PENDING, last_error=CAP_HELD_WHY
    ).count()
    return {guard: getattr(row, guard) for guard in GUARDS} | {"cap_held": held}


def annotated_guards(mailing: Mailing) -> dict[str, int]:
    """`guards_of` for a mailing annotated by with_counts, without a query."""
    return {guard: getattr(mailing, f"{guard}_count") for guard in GUARDS}


def click_rate(clickers: int, sent: int) -> float | None:
    """Clients who clicked of the messages the gateway accepted, in percent; None before any."""
    return percent(clickers, sent)


def clicks_of(mailing: Mailing) -> dict[str, int | float | None]:
    """Its clicks, the clients who clicked, those who left by its {unsubscribe} link, and the click
    rate."""
    row = _counts_row(mailing)
    clicks = {name: getattr(row, name) for name in CLICKS}
    return clicks | {"click_rate": click_rate(row.clickers, row.sent)}


def annotated_clicks(mailing: Mailing) -> dict[str, int | float | None]:
    """`clicks_of` for a mailing annotated by with_counts, without a query."""
    clicks = {name: getattr(mailing, f"{name}_count") for name in CLICKS}
    return clicks | {"click_rate": click_rate(clicks["clickers"], mailing.sent_count)}


def totals(mailings: QuerySet[Mailing]) -> dict[str, int]:
    """Counts by status over all messages of the given mailings: one query."""
    sums = MailingCounts.objects.filter(mailing__in=mailings).aggregate(
        **{status: Coalesce(Sum(status), 0) for status in STATUSES}
    )
    counts = {status: int(sums[status]) for status in STATUSES}
    counts["total"] = sum(counts.values())
    return counts


def accepted_rate(counts: dict[str, int]) -> float | None:
    """Accepted by the gateway (sent) of all messages, in percent; None while there are none."""
    return round(100 * counts["sent"] / counts["total"], 1) if counts["total"] else None


def percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def delivery(accepted: int, delivered: int, undelivered: int) -> dict[str, int | float | None]:
    """What the receipts said of the messages the gateway accepted: delivered, not delivered, no
    receipt yet, and the delivery rate (delivered of accepted, in percent; None before the first
    receipt: without receipts, from a gateway that sends none, it is not 0 % but unknown)."""
    return {
        "delivered": delivered,
        "undelivered": undelivered,
        "no_receipt": max(accepted - delivered - undelivered, 0),
        "delivery_rate": percent(delivered, accepted) if delivered or undelivered else None,
    }


def delivery_of(mailing: Mailing) -> dict[str, int | float | None]:
    row = _counts_row(mailing)
    return delivery(row.sent, row.delivered, row.undelivered)


def annotated_delivery(mailing: Mailing) -> dict[str, int | float | None]:
    """`delivery_of` for a mailing annotated by with_counts, without a query."""
    return delivery(mailing.sent_count, mailing.delivered_count, mailing.undelivered_count)


def operators_of(mailing: Mailing) -> list[dict[str, Any]]:
    """The delivery split per operator code of the clients, lowest delivery rate first: a failing
    operator stands out."""
    rows = [
        {"operator_code": row.operator_code, "accepted": row.accepted}
        | delivery(row.accepted, row.delivered, row.undelivered)
        for row in OperatorCounts.objects.filter(mailing=mailing)
    ]
    return sorted(
        rows, key=lambda r: (r["delivery_rate"] is None, r["delivery_rate"] or 0, r["operator_code"])
    )


def reasons_of(mailing: Mailing, limit: int = 20) -> list[dict[str, Any]]:
    """Why its messages were not delivered, as the receipts said (their status and the gateway's
    words), grouped, the commonest first."""
    rows = DeliveryReason.objects.filter(mailing=mailing, messages__gt=0).order_by(
        "-messages", "status", "error"
    )
    return list(rows.values("status", "error", "messages")[:limit])


def _counts_row(mailing: Mailing) -> MailingCounts:
    return MailingCounts.objects.filter(mailing=mailing).first() or MailingCounts(mailing=mailing)


def per_minute(sent: int, first: datetime | None, last: datetime | None) -> float | None:
    """The sending rate: messages per minute from the first message sent to the last."""
    if not sent or first is None or last is None or last - first < MIN_RATE_SPAN:
        return None
    return round(sent / ((last - first).total_seconds() / 60), 1)


def sms_sent_of(mailing: Mailing) -> int:
    return sms_sent(Mailing.objects.filter(pk=mailing.pk))


def timing(mailing: Mailing) -> dict[str, datetime | float | None]:
    """When the first and last message left, and the sending rate in messages per minute."""
    row = _counts_row(mailing)
    return {
        "started_at": mailing.started_at,
        "finished_at": mailing.finished_at,
        "first_sent_at": row.first_sent_at,
        "last_sent_at": row.last_sent_at,
        "messages_per_minute": per_minute(row.sent, row.first_sent_at, row.last_sent_at),
    }


def rates(mailing_ids: list[int]) -> dict[int, float | None]:
    """`timing(...)["messages_per_minute"]` of several mailings at once: one query."""
    rows = MailingCounts.objects.filter(mailing__in=mailing_ids)
    return {row.mailing_id: per_minute(row.sent, row.first_sent_at, row.last_sent_at) for row in rows}


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
