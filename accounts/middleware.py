"""Every page needs a login, except the paths that authenticate on their own."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

from mailer.http import HtmxHttpRequest


def is_login_exempt(path: str) -> bool:
    """True for paths under a LOGIN_EXEMPT_PREFIXES entry ending in "/", or equal to another entry.

    The API answers 401 with its own bearer-token check and the probes must work without a
    session, so a redirect to the login page would be wrong for both.
    """
    for entry in settings.LOGIN_EXEMPT_PREFIXES:
        if path.startswith(entry) if entry.endswith("/") else path in (entry, entry + "/"):
            return True
    return False


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if is_login_exempt(request.path_info):
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
