"""The one CSV writer: cells a spreadsheet would run as formulas come out as text; dates, numbers
and the separator as the reader's language writes them."""

from __future__ import annotations

import csv
import io
import zoneinfo
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from mailer.csvfiles import csv_text, safe_cell
from mailer.formats import Locale


def locale(language: str, zone: str = "Europe/Moscow", separator: str | None = None) -> Locale:
    with translation.override(language), timezone.override(zoneinfo.ZoneInfo(zone)):
        return Locale.current(separator)


@pytest.mark.parametrize(
    ("value", "ru", "en"),
    [
        ("=1+1", "'=1+1", "'=1+1"),
        ("+7 916", "'+7 916", "'+7 916"),
        ("-5", "'-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx", "'\tx"),
        ("\rx", "'\rx", "'\rx"),
        ("a=1", "a=1", "a=1"),  # only the first character counts
        ("79161234567", "79161234567", "79161234567"),
        ("", "", ""),
        (None, "", ""),
        (-5, -5, -5),  # numbers are numbers, not text
        (1234567, 1234567, 1234567),  # never grouped: "1 234 567" is text to a spreadsheet
        (100.0, "100,0", "100.0"),
        (-5.5, "-5,5", "-5.5"),  # a number we format is no formula
        (Decimal("12.50"), "12,50", "12.50"),
        (datetime(2026, 12, 4, 14, 30, 58, 141541, tzinfo=UTC), "04.12.2026 17:30:58", "2026-12-04 17:30:58"),
    ],
)
def test_safe_cell(value, ru, en):
    assert safe_cell(value, locale("ru")) == ru
    assert safe_cell(value, locale("en")) == en


def test_the_separator_follows_the_language_unless_chosen():
    assert (locale("ru").separator, locale("en").separator) == (";", ",")
    assert locale("ru", separator="\t").separator == "\t"


def test_csv_text_has_a_bom_quotes_and_neutralises():
    text = csv_text(["a", "b"], [["=x", 'say "hi"; then'], [1, None], [2.5, "x"]], locale("ru"))
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    assert rows == [["a", "b"], ["'=x", 'say "hi"; then'], ["1", ""], ["2,5", "x"]]
