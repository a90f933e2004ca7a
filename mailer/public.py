"""The pages for the people mailings go to, not the staff: a link's end (/l/<code>) and the
{unsubscribe} page (/u/<code>). No login, no cookie, in the reader's language (their browser's)."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import ResolverMatch
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from mailer import links
from mailer.models import StopEntry


def _unknown(request: HttpRequest) -> HttpResponse:
    return render(request, "public/link_unknown.html", status=404)


def _redirect(url: str) -> HttpResponse:
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"  # each click comes here, not to a browser's cache
    response["Referrer-Policy"] = "no-referrer"  # the address learns nothing of the code
    return response


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


class ClickMiddleware:
    """Clicks come in bursts (thousands of clients open a mailing's link at once): a GET of
    /l/<code> with a code we gave is answered here, ahead of the staff's middleware (sessions,
    sign-in, CSP, language...), which a redirect without a cookie or a page does not need. Anything
    else, an unknown code too (its 404 page is in the reader's language), goes on to the view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET" and (match := _CLICK_PATH.fullmatch(request.path_info)):
            url = links.follow(match[1])
            if url is not None:
                # The metrics and the access line name the view, as for a request that went the
                # whole way.
                request.resolver_match = ResolverMatch(link, (), {"code": match[1]}, url_name="link")
                return _redirect(url)
        return self.get_response(request)


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
