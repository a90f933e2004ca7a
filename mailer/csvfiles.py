"""The CSV files we write (exports, the daily report's attachment, import reports): one writer.

Every file opens cleanly in Excel and LibreOffice: UTF-8 with a byte order mark (Excel needs it to
guess the encoding) and ISO 8601 dates. A cell that a spreadsheet would run as a formula (text
starting with =, +, -, @, a tab or a carriage return: a mailing text, a tag, an error message) is
prefixed with an apostrophe, as OWASP's "CSV injection" advice says, so it shows as the text it is.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LINES_PER_CHUNK = 500


def safe_cell(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """csv.writer wants a file; this one hands each formatted line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The file in pieces of a few hundred lines, for a streaming response: one piece per line
    would spend more time in the response machinery than in writing CSV."""
    writer = csv.writer(_Echo())
    yield BOM + writer.writerow(header)
    lines: list[str] = []
    for row in rows:
        lines.append(writer.writerow([safe_cell(v) for v in row]))
        if len(lines) == LINES_PER_CHUNK:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return "".join(csv_lines(header, rows))
