"""Date and number formats per language (FORMAT_MODULE_PATH): mailer/formats/<language>/formats.py."""

from __future__ import annotations

from django.utils import formats
from django.utils.translation import gettext as _


def hint(kind: str) -> str:
    """What to type in a date field in the current language, from the first of its input formats
    (`kind`: DATE_INPUT_FORMATS or DATETIME_INPUT_FORMATS), e.g. DD.MM.YYYY hh:mm."""
    text = formats.get_format(kind)[0]
    for code, word in (("%d", _("DD")), ("%m", _("MM")), ("%Y", _("YYYY")), ("%H", _("hh")), ("%M", _("mm"))):
        text = text.replace(code, word)
    return text
