"""Password guessing: django-axes counts failed sign-ins (settings, "Password guessing").

Here is what axes asks the project for: which username and whose address a sign-in is, and the
answer to a locked-out sign-in. How to unlock: the Django admin's "Access attempts" (admins), or
`manage.py axes_reset_username NAME` / `axes_reset_ip ADDRESS` (see docs/security.md).
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import ngettext

logger = logging.getLogger(__name__)


def attempted_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The username a sign-in tried, as axes counts, stores and logs it: cut to the longest a
    username can be. Django's login form does not enforce that length, and a longer one names
    nobody; uncut, it would overflow axes' column (a 500 on PostgreSQL) and flood the log."""
    field = settings.AXES_USERNAME_FORM_FIELD
    username = credentials.get(field) if credentials else getattr(request, "data", request.POST).get(field)
    if username is None:
        return None
    user_model = get_user_model()
    return str(username)[: user_model._meta.get_field(user_model.USERNAME_FIELD).max_length]


def client_ip(request: HttpRequest) -> str:
    """The client's address: the peer's, or behind our proxy (BEHIND_PROXY) the address the proxy
    appended to X-Forwarded-For. The entries before it are whatever the client sent, so never those."""
    address = request.META.get("REMOTE_ADDR", "")
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
        try:
            address = str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass
    return address


def locked_out(request: HttpRequest, response=None, credentials: dict | None = None) -> HttpResponse:
    """The login page again (429), saying why and for how long; also for the Django admin's login."""
    username = attempted_username(request, credentials) or ""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    logger.warning("sign-in refused: locked out username=%r ip=%s", username, client_ip(request))
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "next": request.POST.get("next") or ("/admin/" if request.path.startswith("/admin/") else ""),
        "lockout_message": ngettext(
            "Too many failed sign-ins: this account, or sign-in from this address, is locked for "
            "%(minutes)s minutes. An administrator can unlock it sooner.",
            "Too many failed sign-ins: this account, or sign-in from this address, is locked for "
            "%(minutes)s minutes. An administrator can unlock it sooner.",
            minutes,
        )
        % {"minutes": minutes},
    }
    return render(request, "accounts/login.html", context, status=429)
