"""The pages for the people mailings go to, not the staff: a link's end (/l/<code>) and the
{unsubscribe} page (/u/<code>). No login, no cookie, in the reader's language (their browser's)."""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from mailer import links
from mailer.models import StopEntry


def _unknown(request: HttpRequest) -> HttpResponse:
    return render(request, "public/link_unknown.html", status=404)


@login_not_required
@require_safe
def link(request: HttpRequest, code: str) -> HttpResponse:
    """A click: counted (a GET; a HEAD, as link checkers send, is not), then on to the address the
    text had. The address is the link's, never the request's: no open redirect."""
    if not re.fullmatch(links.CODE_RE, code):
        return _unknown(request)
    if request.method == "HEAD":
        url = (
            links.Link.objects.filter(code=code, kind=links.LinkKind.CLICK)
            .values_list("url", flat=True)
            .first()
        )
    else:
        url = links.follow(code)
    if url is None:
        return _unknown(request)
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"  # each click comes here, not to a browser's cache
    response["Referrer-Policy"] = "no-referrer"  # the address learns nothing of the code
    return response


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
