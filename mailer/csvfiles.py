"""The CSV files we write (exports, the daily report's attachment, import reports): one writer.

Every file opens cleanly in Excel and LibreOffice in the reader's language: UTF-8 with a byte
order mark (Excel needs it to guess the encoding), the separator, dates and decimals of the
reader's Locale (mailer.formats: in Russian `;`, `04.12.2026 17:30:58` in their time zone and
`100,0`, which Russian Excel reads as a date and a number; in English `,`, `2026-12-04 17:30:58`
and `100.0`). Numbers are never grouped: "12 400" would be text to a spreadsheet.

A cell that a spreadsheet would run as a formula (text starting with =, +, -, @, a tab or a
carriage return: a mailing text, a tag, an error message) is prefixed with an apostrophe, as
OWASP's "CSV injection" advice says, so it shows as the text it is. Only text is checked: a
number we format ourselves ("-5,5") is a number to the spreadsheet too.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from mailer.formats import Locale

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LINES_PER_CHUNK = 500


def safe_cell(value: Any, locale: Locale) -> Any:
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if value is None:
        return ""
    if isinstance(value, datetime):
        return locale.datetime_text(value)
    if isinstance(value, float | Decimal):
        return locale.number_text(value)
    return value


class _Echo:
    """csv.writer wants a file; this one hands each formatted line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]], locale: Locale) -> Iterator[str]:
    """The file in pieces of a few hundred lines, for a streaming response: one piece per line
    would spend more time in the response machinery than in writing CSV."""
    writer = csv.writer(_Echo(), delimiter=locale.separator)
    yield BOM + writer.writerow([safe_cell(v, locale) for v in header])
    lines: list[str] = []
    for row in rows:
        lines.append(writer.writerow([safe_cell(v, locale) for v in row]))
        if len(lines) == LINES_PER_CHUNK:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]], locale: Locale) -> str:
    return "".join(csv_lines(header, rows, locale))
