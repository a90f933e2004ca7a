"""Password guessing: django-axes counts failed sign-ins (settings, "Password guessing").

Two locks. axes' own, the pair lock, refuses a username from the address it failed from
(LOGIN_FAILURE_LIMIT); the address lock (LOGIN_ADDRESS_FAILURE_LIMIT, `address_locked`) is added
here through axes' handler. Also here what axes asks the project for: which username and whose address a sign-in is,
and the answer to a locked-out sign-in.

How to unlock: a user, by an admin on the Users page (`unlock`; a superuser only by a superuser);
an address, from the shell with `manage.py axes_reset_ip ADDRESS` (also `axes_reset_username NAME`;
see docs/security.md).
"""

from __future__ import annotations

import ipaddress
import logging

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import ngettext

from mailer.models import AuditEntry

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


def recent_failures(**where) -> QuerySet:
    """Failed sign-ins per username and address ({username, ip_address, failures}) within
    LOGIN_LOCKOUT_MINUTES, as axes counts them for its lock (its rows also split by browser)."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    return (
        AccessAttempt.objects.filter(attempt_time__gte=since, **where)
        .values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"))
    )


def address_locked(address: str) -> bool:
    """Whether sign-in from `address` is refused whatever the username: LOGIN_ADDRESS_FAILURE_LIMIT
    failures from it, each username counting for LOGIN_FAILURE_LIMIT at most. Beyond that the pair
    lock refused that username's sign-ins without checking a password, so they guessed nothing;
    and it takes failures over several usernames (password spraying), never one person's alone."""
    limit = settings.AXES_FAILURE_LIMIT
    guesses = sum(min(row["failures"], limit) for row in recent_failures(ip_address=address))
    return guesses >= settings.LOGIN_ADDRESS_FAILURE_LIMIT


def locked_usernames() -> set[str]:
    """The usernames the pair lock refuses now, from one address or more."""
    return {row["username"] for row in recent_failures().filter(failures__gte=settings.AXES_FAILURE_LIMIT)}


def unlock(user, by) -> int:
    """Clear `user`'s failed sign-ins from every address, with an audit entry when there were any;
    how many there were. An address lock stays: those failures were other usernames' too."""
    username = user.get_username()
    with transaction.atomic():
        failures = sum(row["failures"] for row in recent_failures(username=username))
        reset(username=username)
        if failures:
            AuditEntry.record(by, "unlocked", user, {"failures": [failures, 0]})
    return failures


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler (AXES_HANDLER) with the address lock beside its own."""

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        return super().is_locked(request, credentials) or address_locked(request.axes_ip_address)

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        # axes judges a failure by its own count only: the one that reaches the address limit, and
        # every refused sign-in after it, must be answered as locked too, not as a wrong password.
        if request is not None and not request.axes_locked_out and address_locked(request.axes_ip_address):
            request.axes_locked_out = True
            request.axes_credentials = credentials


def locked_out(request: HttpRequest, response=None, credentials: dict | None = None) -> HttpResponse:
    """The login page again (429), saying which lock refused and for how long; also for the Django
    admin's login."""
    username = attempted_username(request, credentials) or ""
    address = client_ip(request)
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    whole_address = address_locked(address)
    logger.warning(
        "sign-in refused: locked out username=%r ip=%s lock=%s",
        username,
        address,
        "address" if whole_address else "username and address",
    )
    if whole_address:
        message = ngettext(
            "Too many failed sign-ins to different accounts from this address: sign-in from this "
            "address is locked for %(minutes)s minute, whatever the account.",
            "Too many failed sign-ins to different accounts from this address: sign-in from this "
            "address is locked for %(minutes)s minutes, whatever the account.",
            minutes,
        )
    else:
        message = ngettext(
            "Too many failed sign-ins: this account is locked for %(minutes)s minute from this "
            "address. An administrator can unlock it sooner.",
            "Too many failed sign-ins: this account is locked for %(minutes)s minutes from this "
            "address. An administrator can unlock it sooner.",
            minutes,
        )
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "next": request.POST.get("next") or ("/admin/" if request.path.startswith("/admin/") else ""),
        "lockout_message": message % {"minutes": minutes},
    }
    return render(request, "accounts/login.html", context, status=429)
