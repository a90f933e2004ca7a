from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required, permission_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import lockout
from accounts.forms import ProfileForm, RoleForm, TokenForm
from accounts.models import ApiToken, Profile
from accounts.roles import ROLE_LABELS, role_of, set_role
from mailer.models import AuditEntry, timezone_problem
from mailer.timezones import zone_label

AUTH0_BACKEND = "social_core.backends.auth0.Auth0OAuth2"


@login_not_required
def login(request: HttpRequest) -> HttpResponse:
    view = auth_views.LoginView.as_view(
        template_name="accounts/login.html", extra_context={"auth0_enabled": settings.AUTH0_ENABLED}
    )
    return view(request)


@login_not_required
@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    # Django remembers in the session which backend signed the user in; for Auth0 the Auth0
    # session must end too, or "Sign in with Auth0" would let the same person straight back in.
    used_sso = request.session.get(BACKEND_SESSION_KEY) == AUTH0_BACKEND
    auth.logout(request)
    if used_sso and settings.AUTH0_ENABLED:
        query = urlencode(
            {
                "client_id": settings.AUTH0_CLIENT_ID,
                "returnTo": request.build_absolute_uri(reverse("accounts:login")),
            }
        )
        return redirect(f"https://{settings.AUTH0_DOMAIN}/v2/logout?{query}")
    return redirect("accounts:login")


@login_not_required
def refused(request: HttpRequest) -> HttpResponse:
    """Where a refused or failed single sign-on lands; the reason arrives as a message."""
    return render(request, "accounts/refused.html", status=403)


@permission_required("auth.view_user", raise_exception=True)
def users(request: HttpRequest) -> HttpResponse:
    people = User.objects.order_by("username").prefetch_related("groups", "social_auth")
    locked = lockout.locked_usernames()
    rows = []
    for person in people:
        role = role_of(person)
        rows.append(
            {
                "user": person,
                "role": role,
                "role_label": ROLE_LABELS.get(role),
                "locked": person.get_username() in locked,
            }
        )
    return render(request, "accounts/users.html", {"rows": rows, "role_form": RoleForm()})


def _get_other_user(request: HttpRequest, user_id: int) -> User:
    """Another user an admin may change: not oneself (nobody locks themselves out), and not a
    superuser (a role is less than a superuser; superusers are managed from the command line)."""
    person = get_object_or_404(User, pk=user_id)
    if person == request.user:
        raise Http404("change your own account through another admin")
    if person.is_superuser and not request.user.is_superuser:
        raise PermissionDenied("superusers are managed by superusers")
    return person


@require_POST
@permission_required("auth.change_user", raise_exception=True)
def change_role(request: HttpRequest, user_id: int) -> HttpResponse:
    person = _get_other_user(request, user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the roles viewer, manager or admin."))
    elif person.is_superuser:
        messages.error(
            request,
            _("%(username)s is a superuser; a role would change nothing.") % {"username": person.username},
        )
    else:
        role = form.cleaned_data["role"]
        with transaction.atomic():
            before = role_of(person)
            set_role(person, role)
            AuditEntry.record(request.user, "role_changed", person, {"role": [before, role]})
        messages.success(
            request,
            _("%(username)s is now %(role)s.") % {"username": person.username, "role": ROLE_LABELS[role]},
        )
    return redirect("accounts:users")


@require_POST
@permission_required("auth.change_user", raise_exception=True)
def set_active(request: HttpRequest, user_id: int) -> HttpResponse:
    person = _get_other_user(request, user_id)
    active = request.POST.get("active") == "1"
    with transaction.atomic():
        changes = {"is_active": [person.is_active, active]}
        person.is_active = active
        person.save(update_fields=["is_active"])
        AuditEntry.record(request.user, "activated" if active else "deactivated", person, changes)
    if active:
        messages.success(request, _("%(username)s may sign in again.") % {"username": person.username})
    else:
        # Inactive users' sessions and API tokens stop working on their next request.
        messages.success(
            request,
            _("%(username)s is deactivated and can no longer sign in.") % {"username": person.username},
        )
    return redirect("accounts:users")


@require_POST
@permission_required("axes.delete_accessattempt", raise_exception=True)
def unlock(request: HttpRequest, user_id: int) -> HttpResponse:
    person = _get_other_user(request, user_id)
    if lockout.unlock(person, by=request.user):
        messages.success(request, _("%(username)s is unlocked.") % {"username": person.username})
    else:
        messages.info(request, _("%(username)s had no failed sign-ins.") % {"username": person.username})
    return redirect("accounts:users")


def _tokens_page(
    request: HttpRequest, form: TokenForm, new_token: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "form": form,
        "new_token": new_token,
        "tokens": ApiToken.objects.filter(user=request.user),
        "others": None,
    }
    if request.user.has_perm("accounts.view_apitoken"):
        context["others"] = ApiToken.objects.exclude(user=request.user).select_related("user")
    return render(request, "accounts/tokens.html", context, status=status)


def tokens(request: HttpRequest) -> HttpResponse:
    return _tokens_page(request, TokenForm())


# Rendered rather than redirected, since the raw token exists only in this response; never_cache
# (Cache-Control: no-store) keeps it out of the browser's and any proxy's cache.
@never_cache
@require_POST
def create_token(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form, status=400)
    token, raw = ApiToken.issue(request.user, form.cleaned_data["name"], days=form.cleaned_data["days"])
    messages.success(
        request, _("Token “%(name)s” created. Copy it now: it is not shown again.") % {"name": token.name}
    )
    return _tokens_page(request, TokenForm(), new_token=raw)


def _get_token_for_user(request: HttpRequest, token_id: int) -> ApiToken:
    """One's own tokens; admins also everyone else's. Others' tokens look like they do not exist."""
    token = get_object_or_404(ApiToken, pk=token_id)
    if token.user_id != request.user.pk and not request.user.has_perm("accounts.change_apitoken"):
        raise Http404("no such token")
    return token


@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = _get_token_for_user(request, token_id)
    token.revoke(by=request.user)
    messages.success(
        request,
        _("Token “%(name)s” (%(prefix)s…) is revoked.") % {"name": token.name, "prefix": token.prefix},
    )
    return redirect("accounts:tokens")


def _remember_language(response: HttpResponse, language: str) -> None:
    """The language cookie LocaleMiddleware reads: the user's choice, or none (the browser's)."""
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            secure=settings.SESSION_COOKIE_SECURE,
        )
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME, samesite=settings.LANGUAGE_COOKIE_SAMESITE)


def profile(request: HttpRequest) -> HttpResponse:
    """One's own time zone and language."""
    mine = Profile.of(request.user)
    form = ProfileForm(request.POST or None, instance=mine)
    if request.method == "POST" and form.is_valid():
        form.save()
        response = redirect("accounts:profile")
        _remember_language(response, mine.language)
        with translation.override(mine.language or translation.get_language()):
            messages.success(
                request,
                _("Saved: every date is shown and typed in %(zone)s.") % {"zone": zone_label(mine.zone)},
            )
        return response
    context = {
        "form": form,
        "profile": mine,
        # Linking Auth0 to an account with a password is its owner's choice (accounts.pipeline).
        "may_link_auth0": settings.AUTH0_ENABLED and not request.user.is_superuser,
        "linked_to_auth0": request.user.social_auth.exists(),
    }
    return render(request, "accounts/profile.html", context)


@require_POST
def set_timezone(request: HttpRequest) -> HttpResponse:
    """The answer to the proposal on the first page after signing in: the browser's zone (or the
    server's, to keep it). Back to where the user was."""
    zone = request.POST.get("timezone", "")
    if problem := timezone_problem(zone):
        messages.error(request, problem)
    else:
        Profile.objects.update_or_create(user=request.user, defaults={"timezone": zone})
        messages.success(
            request, _("Every date is now shown and typed in %(zone)s.") % {"zone": zone_label(zone)}
        )
    return redirect(_safe_next(request))


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    allowed = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    return target if allowed else "/"


@login_not_required
@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The language switcher: Django's (the cookie), and the profile's too once signed in, so that
    the choice follows the user to another browser."""
    response = i18n.set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        Profile.objects.update_or_create(user=request.user, defaults={"language": language})
    return response
