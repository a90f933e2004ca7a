"""Exports as CSV or .xlsx, in the reader's language and time zone.

Rows are read from the database in chunks (`iterator(chunk_size=...)`), never as one list: a CSV
streams them as it goes (mailer.csvfiles), an .xlsx writes them to a temporary file that is then
sent (mailer.xlsxfiles), so a million-row export never sits in memory either way.

Headers, statuses, states and the engine's reasons are translated when the export begins (the
rows of a streamed CSV are written after the view has returned); dates and numbers are written
by the reader's Locale (mailer.formats). A CSV's separator is the language's (";" in Russian)
unless the link says `sep=;`, `sep=,` or `sep=tab`; any other value is refused with a 400 that
names it, rather than a file the reader's spreadsheet would split wrongly without a word.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _

from mailer import importing, stats, xlsxfiles
from mailer.csvfiles import csv_lines
from mailer.formats import Locale
from mailer.models import (
    DeliveryStatus,
    Mailing,
    MailingKind,
    MailingState,
    Message,
    MessageStatus,
    labels,
    reason_texts,
)
from mailer.stats import STATUSES

CHUNK_SIZE = 2000  # rows per database fetch
SEPARATORS = {";": ";", ",": ",", "tab": "\t"}  # the `sep` parameter's values
FORMATS = ("csv", "xlsx")


@dataclass
class Export:
    """A table to download: rows of plain values (text in the reader's language, numbers, aware
    datetimes), made by `rows` when the file is written."""

    name: str  # the file's name without its extension
    title: str  # the sheet's
    columns: Sequence[tuple[str, int]]  # header and width in characters (.xlsx)
    rows: Callable[[], Iterable[Sequence[Any]]]

    @property
    def header(self) -> list[str]:
        return [label for label, _width in self.columns]


def download(request: HttpRequest, kind: str, export: Export) -> HttpResponseBase:
    """The export as the file `kind` ("csv" or "xlsx") asks for."""
    if kind == "xlsx":
        return xlsx_response(export, Locale.current())
    sep = request.GET.get("sep")
    if sep is not None and sep not in SEPARATORS:
        return HttpResponseBadRequest(
            _("Unknown separator sep=%(sep)s: use sep=; or sep=, or sep=tab.") % {"sep": sep[:20]},
            content_type="text/plain; charset=utf-8",
        )
    return csv_response(export, Locale.current(SEPARATORS.get(sep or "")))


def csv_response(export: Export, locale: Locale) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(export.header, export.rows(), locale), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{export.name}.csv"'
    return response


def xlsx_response(export: Export, locale: Locale) -> FileResponse:
    """Written whole to a temporary file (unnamed: gone when closed), then sent from it."""
    file = tempfile.TemporaryFile()
    try:
        widths = [width for _label, width in export.columns]
        xlsxfiles.write_xlsx(file, export.title, export.header, export.rows(), locale, widths)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return FileResponse(
        file,
        as_attachment=True,
        filename=f"{export.name}.xlsx",
        content_type=xlsxfiles.CONTENT_TYPE,
    )


MESSAGE_COLUMNS = (
    "id",
    "client__phone",
    "status",
    "attempts",
    "created_at",
    "sent_at",
    "last_error",
    "carried_text",
    "delivery_status",
    "delivered_at",
    "delivery_error",
)


def messages_export(mailing: Mailing, messages: QuerySet[Message]) -> Export:
    statuses, reason, receipts = labels(MessageStatus), reason_texts(), labels(DeliveryStatus)
    queryset = messages.with_text().order_by("id").values_list(*MESSAGE_COLUMNS)

    def rows() -> Iterator[Sequence[Any]]:
        for pk, phone, status, attempts, created_at, sent_at, error, text, *receipt in queryset.iterator(
            chunk_size=CHUNK_SIZE
        ):
            delivery, delivered_at, delivery_error = receipt
            yield (
                pk,
                phone,
                statuses.get(status, status),
                attempts,
                created_at,
                sent_at,
                reason(error),
                text,
                receipts.get(delivery, delivery),
                delivered_at,
                delivery_error,
            )

    columns = [
        (_("Message no."), 12),
        (_("Phone"), 14),
        (_("Status"), 12),
        (_("Attempts"), 9),
        (_("Created at"), 20),
        (_("Accepted at"), 20),
        (_("Why"), 40),
        (_("Text"), 60),
        (_("Receipt"), 16),
        (_("Receipt time"), 20),
        (_("Gateway's words"), 30),
    ]
    return Export(f"mailing-{mailing.pk}-messages", _("Messages"), columns, rows)


def clickers_export(mailing: Mailing) -> Export:
    """The clients who clicked the mailing's links: phone, first and last click, clicks."""
    queryset = mailing.clickers.order_by("first_at", "id").values_list(
        "phone", "first_at", "last_at", "clicks"
    )
    columns = [(_("Phone"), 14), (_("First click"), 20), (_("Last click"), 20), (_("Clicks"), 10)]
    return Export(
        f"mailing-{mailing.pk}-clickers",
        _("Clicked"),
        columns,
        lambda: queryset.iterator(chunk_size=CHUNK_SIZE),
    )


def overview_export(mailings: QuerySet[Mailing]) -> Export:
    """One row per mailing with its message counts; `mailings` is annotated by stats.with_counts."""
    states, statuses, kinds = labels(MailingState), labels(MessageStatus), labels(MailingKind)

    def rows() -> Iterator[Sequence[Any]]:
        for m in mailings.iterator(chunk_size=CHUNK_SIZE):
            counts = stats.annotated_counts(m)
            yield (
                m.pk,
                m.text,
                kinds[m.kind],
                states.get(m.state, m.state),
                m.start_at,
                m.end_at,
                " ".join(m.filter_tags),
                " ".join(m.filter_operator_codes),
                counts["total"],
                *(counts[status] for status in STATUSES),
                stats.accepted_rate(counts),
                *stats.annotated_guards(m).values(),
                m.sms_parts,
                m.sms_sent,
                *stats.annotated_clicks(m).values(),
                *stats.annotated_delivery(m).values(),
            )

    columns = [
        (_("Mailing no."), 12),
        (_("Text"), 60),
        (_("Kind"), 12),
        (_("State"), 14),
        (_("Start"), 20),
        (_("End"), 20),
        (_("Tags"), 20),
        (_("Operator codes"), 16),
        (_("Total"), 10),
        *((statuses[status], 12) for status in STATUSES),
        (_("Accepted, %"), 14),
        (_("No consent"), 12),
        (_("Expired by the cap"), 12),
        (_("SMS parts"), 10),
        (_("SMS sent"), 12),
        (_("Clicks"), 10),
        (_("Clients who clicked"), 12),
        (_("Unsubscribed"), 12),
        (_("Click rate, %"), 12),
        (_("Delivered"), 12),
        (_("Not delivered"), 12),
        (_("No receipt yet"), 12),
        (_("Delivered, %"), 12),
    ]
    return Export("mailings-overview", _("Mailings"), columns, rows)


def import_errors_export(name: str, errors: list[importing.RowError]) -> Export:
    """An import's errors as the page shows them: the row, its phone as typed, the column in the
    reader's language, the problem."""
    columns = [(_("Row"), 8), (_("Phone"), 16), (_("Column"), 14), (_("Problem"), 80)]
    return Export(name, _("Errors"), columns, lambda: importing.error_rows(errors))
