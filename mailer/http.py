"""The request our views get: Django's, plus what django-htmx's middleware adds (`request.htmx`).

Typing views with it lets a type checker see `request.htmx.target` and the like, as django-htmx
recommends; at run time it is the plain HttpRequest.
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def count_param(raw: str | None) -> int | None:
    """A whole number 1 or more from a query parameter, or None for anything else.

    ASCII digits only: str.isdigit() also accepts "²" and "①", which int() refuses. At most nine:
    int() of a very long digit string is slow, and an OFFSET past 2**63 overflows the database.
    """
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        return None
    number = int(raw)
    return number if number >= 1 else None
