"""The pages for the people mailings go to, not the staff: a link's end (/l/<code>) and the
{unsubscribe} page (/u/<code>). No login, no cookie, in the reader's language (their browser's)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.encoding import iri_to_uri
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from mailer import links
from mailer.logging import access_logger
from mailer.models import StopEntry
from mailer.monitoring import count_request


def _unknown(request: HttpRequest) -> HttpResponse:
    return render(request, "public/link_unknown.html", status=404)


_REDIRECT_HEADERS = [
    ("Cache-Control", "no-store"),  # each click comes here, not to a browser's cache
    ("Referrer-Policy", "no-referrer"),  # the address learns nothing of the code
    ("Content-Length", "0"),
]


def _redirect(url: str) -> HttpResponse:
    return HttpResponseRedirect(url, headers=dict(_REDIRECT_HEADERS))


@login_not_required
@require_safe
def link(request: HttpRequest, code: str) -> HttpResponse:
    """A click: counted (a GET; a HEAD, as link checkers send, is not), then on to the address the
    text had. The address is the link's, never the request's: no open redirect."""
    if not re.fullmatch(links.CODE_RE, code):
        return _unknown(request)
    url = links.url_of(code) if request.method == "HEAD" else links.follow(code)
    if url is None:
        return _unknown(request)
    return _redirect(url)


_CLICK_PATH = re.compile(rf"/l/({links.CODE_RE})")


def clicks_first(django: Callable) -> Callable:
    """The WSGI application (mailer/wsgi.py) around Django's: clicks come in bursts (thousands of
    clients open a mailing's link at once), and a GET of /l/<code> with a code we gave is answered
    before Django makes a request of it. Its middleware (sessions, sign-in, CSP, language...) is
    for pages, not for a redirect without a cookie, and took two thirds of a click's time in the
    web process. The click is counted in the metrics as view "link"; its access line is at DEBUG
    (a burst would flood the log, and the click itself is written down). Anything else, an unknown
    code too (its 404 page is in the reader's language), goes to Django, and so does a click whose
    database statement failed: the view tries once more and answers as for any request."""

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ["REQUEST_METHOD"] == "GET" and (match := _CLICK_PATH.fullmatch(path)):
            started = time.perf_counter()
            connection.close_if_unusable_or_obsolete()  # as Django does at each request's start
            try:
                url = links.follow(match[1])
            except DatabaseError:
                url = None
            if url is not None:
                start_response("302 Found", [("Location", iri_to_uri(url)), *_REDIRECT_HEADERS])
                count_request("GET", 302, "link", started)
                access_logger.debug("GET %s 302", path, extra={"method": "GET", "path": path, "status": 302})
                return [b""]
        return django(environ, start_response)

    return application


def _masked(phone: str) -> str:
    """+7 916 ***-**-67: the reader sees it is theirs, a passer-by learns nothing."""
    return f"+7 {phone[1:4]} ***-**-{phone[-2:]}"


@login_not_required
@csrf_exempt  # no session here: the code is the key, and a CSRF cookie would be one more cookie
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, code: str) -> HttpResponse:
    """The {unsubscribe} link: a page that asks to confirm (a GET changes nothing: link scanners
    prefetch), and a POST that puts the phone on the stop list (source "link", the mailing named)."""
    link = None
    if re.fullmatch(links.CODE_RE, code):
        link = links.Link.objects.filter(code=code, kind=links.LinkKind.UNSUBSCRIBE).first()
    if link is None:
        return _unknown(request)
    context = {"phone": _masked(link.phone), "done": False}
    if request.method == "POST":
        context["done"] = True
        links.unsubscribe(link)
    elif StopEntry.objects.standing().filter(phone=link.phone).exists():
        context["done"] = True
    return render(request, "public/unsubscribe.html", context)
