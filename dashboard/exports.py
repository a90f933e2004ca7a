"""CSV exports that stream: rows are read from the database in chunks and written as they go.

A million-row export never sits in memory. The cells are written by mailer.csvfiles, which keeps
spreadsheets from running them as formulas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from mailer import stats
from mailer.csvfiles import csv_lines
from mailer.models import Mailing, Message
from mailer.stats import STATUSES

CHUNK_SIZE = 2000  # rows per database fetch


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


MESSAGE_COLUMNS = (
    "id",
    "client__phone",
    "status",
    "attempts",
    "created_at",
    "sent_at",
    "last_error",
    "sent_text__text",
)
MESSAGE_HEADER = ("message_id", "phone", "status", "attempts", "created_at", "sent_at", "last_error", "text")


def messages_csv(mailing: Mailing, messages: QuerySet[Message]) -> StreamingHttpResponse:
    rows = messages.order_by("id").values_list(*MESSAGE_COLUMNS).iterator(chunk_size=CHUNK_SIZE)
    return csv_response(f"mailing-{mailing.pk}-messages.csv", MESSAGE_HEADER, rows)


OVERVIEW_HEADER = (
    "mailing_id",
    "text",
    "state",
    "start_at",
    "end_at",
    "tags",
    "operator_codes",
    "total",
    *STATUSES,
    "delivery_rate",
    "sms_parts",
    "sms_sent",
)


def overview_csv(mailings: QuerySet[Mailing]) -> StreamingHttpResponse:
    """One row per mailing with its message counts; `mailings` is annotated by stats.with_counts."""

    def rows() -> Iterator[Sequence[Any]]:
        for m in mailings.iterator(chunk_size=CHUNK_SIZE):
            counts = stats.annotated_counts(m)
            yield (
                m.pk,
                m.text,
                m.state,
                m.start_at,
                m.end_at,
                " ".join(m.filter_tags),
                " ".join(m.filter_operator_codes),
                counts["total"],
                *(counts[status] for status in STATUSES),
                stats.delivery_rate(counts),
                m.sms_parts,
                m.sms_sent,
            )

    return csv_response("mailings-overview.csv", OVERVIEW_HEADER, rows())
