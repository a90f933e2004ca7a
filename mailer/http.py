"""The request our views get: Django's, plus what django-htmx's middleware adds (`request.htmx`).

Typing views with it lets a type checker see `request.htmx.target` and the like, as django-htmx
recommends; at run time it is the plain HttpRequest.
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
