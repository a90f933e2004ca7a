"""Every page needs a login, except the views marked `@login_not_required` (Django's rule): the
probes and the sign-in pages are marked where they are written, and DRF marks every API view
itself, as the API answers 401 with its own token check instead of redirecting to a login page."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils import timezone, translation
from django_htmx.http import HttpResponseClientRedirect

from mailer.http import HtmxHttpRequest


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    def process_view(self, request, view_func, view_args, view_kwargs):
        # Django's asks for the session's user first; a view open without it (the API, which
        # knows its caller by token; the probes) then reads the session for nothing.
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request: HtmxHttpRequest, view_func) -> HttpResponse:
        if request.htmx:
            # A plain redirect would be followed by the XHR and the login form swapped into a
            # fragment of the page; HX-Redirect makes the browser load the login page instead,
            # coming back to the page the user was on (not to the fragment's URL).
            login_url = resolve_url(self.get_login_url(view_func))
            back_to = request.htmx.current_url_abs_path or "/"
            redirect = redirect_to_login(back_to, login_url, self.get_redirect_field_name(view_func))
            return HttpResponseClientRedirect(redirect.url)
        return super().handle_no_permission(request, view_func)


class UserPreferencesMiddleware:
    """A signed-in user's time zone for the request (every date shown or typed is in it), and the
    language of their profile where the browser holds no choice of its own. The REST API keeps the
    server's zone: its dates carry their offsets anyway (ISO 8601)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The API's path first: an API call from a browser that is signed in too (its session
        # cookie) would otherwise read the session and its user, which the API does not use.
        if not request.path_info.startswith("/api/") and request.user.is_authenticated:
            from accounts.models import Profile

            request.profile = profile = Profile.of(request.user)
            timezone.activate(zoneinfo.ZoneInfo(profile.zone))
            if profile.language and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
                translation.activate(profile.language)
                request.LANGUAGE_CODE = profile.language
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
