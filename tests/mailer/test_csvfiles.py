"""The one CSV writer: cells a spreadsheet would run as formulas come out as text."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from mailer.csvfiles import csv_text, safe_cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+7 916", "'+7 916"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=1", "a=1"),  # only the first character counts
        ("79161234567", "79161234567"),
        ("", ""),
        (None, ""),
        (-5, -5),  # numbers are numbers, not text
        (12, 12),
        (datetime(2026, 3, 1, 12, 30, tzinfo=UTC), "2026-03-01T12:30:00+00:00"),
        (date(2026, 3, 1), "2026-03-01"),
    ],
)
def test_safe_cell(value, cell):
    assert safe_cell(value) == cell


def test_csv_text_has_a_bom_quotes_and_neutralises():
    text = csv_text(["a", "b"], [["=x", 'say "hi", then'], [1, None]])
    assert text.startswith("\ufeff")
    assert list(csv.reader(io.StringIO(text[1:]))) == [["a", "b"], ["'=x", 'say "hi", then'], ["1", ""]]
