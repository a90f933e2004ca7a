"""Date and number formats per language (FORMAT_MODULE_PATH): mailer/formats/<language>/formats.py;
and Locale, the same formats for the files we write (CSV, .xlsx)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured
from django.utils import formats, numberformat, timezone
from django.utils.translation import gettext as _


def hint(kind: str) -> str:
    """What to type in a date field in the current language, from the first of its input formats
    (`kind`: DATE_INPUT_FORMATS or DATETIME_INPUT_FORMATS), e.g. DD.MM.YYYY hh:mm."""
    text = formats.get_format(kind)[0]
    for code, word in (("%d", _("DD")), ("%m", _("MM")), ("%Y", _("YYYY")), ("%H", _("hh")), ("%M", _("mm"))):
        text = text.replace(code, word)
    return text


# Django's date format letters we write files with, as strftime and as Excel number formats.
_LETTERS = {
    "d": ("%d", "DD"),
    "m": ("%m", "MM"),
    "Y": ("%Y", "YYYY"),
    "H": ("%H", "HH"),
    "i": ("%M", "MM"),
    "s": ("%S", "SS"),
}


def _translate(django_format: str, which: int) -> str:
    out = []
    for char in django_format:
        if char in _LETTERS:
            out.append(_LETTERS[char][which])
        elif char.isalpha() or char == "\\":
            raise ImproperlyConfigured(f"no file format for {char!r} of {django_format!r}")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class Locale:
    """How the reader writes dates and numbers in a file (CSV, .xlsx): the active language's
    DATETIME_FORMAT (to the second) and decimal separator, and the active time zone.

    Taken when a file is begun: a streamed file's rows are written after the view has returned,
    when the request's zone is no longer active, and strftime is many times faster per cell than
    Django's date_format. The CSV separator follows the decimal one, as a spreadsheet's list
    separator does (Excel in Russian splits on ";" because "," is in its numbers)."""

    zone: tzinfo
    datetime_format: str  # strftime
    excel_datetime_format: str
    decimal_separator: str
    separator: str

    @classmethod
    def current(cls, separator: str | None = None) -> Locale:
        django_format = formats.get_format("DATETIME_FORMAT")
        decimal = formats.get_format("DECIMAL_SEPARATOR")
        return cls(
            zone=timezone.get_current_timezone(),
            datetime_format=_translate(django_format, 0),
            excel_datetime_format=_translate(django_format, 1),
            decimal_separator=decimal,
            separator=separator or (";" if decimal == "," else ","),
        )

    def local(self, moment: datetime) -> datetime:
        """The moment as the reader's clock showed it, to the second, without a zone (as a spreadsheet
        holds it)."""
        return moment.astimezone(self.zone).replace(tzinfo=None, microsecond=0)

    def datetime_text(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime(self.datetime_format)

    def number_text(self, number: float | Decimal) -> str:
        """No grouping: a spreadsheet reads "12 400,5" as text."""
        return numberformat.format(number, self.decimal_separator)
