"""The .xlsx files we write (exports beside their CSV, the daily report's second attachment).

XlsxWriter in constant_memory mode: each row goes to a temporary file as it comes and the
workbook is zipped at the end, so a million rows take a few tens of MB whatever the rows. It was
about twice as fast as openpyxl's write-only mode on the same 100,000 rows (docs/benchmarks.md).

Cells keep their types: a moment is a date cell in the reader's zone (naive, as a spreadsheet
holds it) with the language's date-time format, a number a number cell, text a text cell: a text
starting with "=" is written as text, never as a formula. The header row is bold and frozen.
A sheet holds at most MAX_ROWS rows (Excel's limit), so more go on to a second sheet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

import xlsxwriter

from mailer.formats import Locale

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_ROWS = 1_048_576  # Excel's rows per sheet, the header included
TITLE_MAX = 31  # Excel's longest sheet name
MIN_WIDTH, MAX_WIDTH = 8, 60  # characters


def write_xlsx(
    target: str | IO[bytes],
    title: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    locale: Locale,
    widths: Sequence[int] = (),
) -> int:
    """Write the workbook to `target` (a path or a binary file); returns the rows written.
    `widths` in characters, by column; a column is at least as wide as its header."""
    workbook = xlsxwriter.Workbook(
        target,
        {
            "constant_memory": True,
            # Text stays text: no formulas, numbers or links made of strings.
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    bold = workbook.add_format({"bold": True})
    moment = workbook.add_format({"num_format": locale.excel_datetime_format})
    sheets = 0
    sheet = None
    line = MAX_ROWS
    written = 0

    def new_sheet():
        nonlocal sheets
        sheets += 1
        name = title if sheets == 1 else f"{title[: TITLE_MAX - 6]} ({sheets})"
        ws = workbook.add_worksheet(name[:TITLE_MAX])
        for col, label in enumerate(header):
            width = max(widths[col] if col < len(widths) else 0, len(label) + 2)
            ws.set_column(col, col, max(MIN_WIDTH, min(MAX_WIDTH, width)))
            ws.write_string(0, col, label, bold)
        ws.freeze_panes(1, 0)
        return ws

    for row in rows:
        if line == MAX_ROWS:
            sheet, line = new_sheet(), 1
        for col, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):
                sheet.write_string(line, col, value)
            elif isinstance(value, datetime):
                sheet.write_datetime(line, col, locale.local(value), moment)
            elif isinstance(value, int | float | Decimal):
                sheet.write_number(line, col, value)
            else:
                sheet.write_string(line, col, str(value))
        line += 1
        written += 1
    if sheet is None:
        new_sheet()  # an empty export still has its header
    workbook.close()
    return written
