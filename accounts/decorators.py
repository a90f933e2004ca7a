"""Access checks for views: by role, or by one of the model permissions the roles carry.

Roles are groups with permissions (accounts/roles.py), so `user.has_perm("mailer.change_mailing")`
and Django's own `permission_required` work as well; these add a 403 instead of a login redirect
for someone who is signed in but not allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.roles import ROLES, role_of

View = Callable[..., HttpResponse]


def has_role(user, role: str) -> bool:
    """True when the user's role is `role` or a higher one (viewer < manager < admin)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if not user.is_authenticated or not user.is_active:
        return False
    current = role_of(user)
    return current is not None and ROLES.index(current) >= ROLES.index(role)


def role_required(role: str) -> Callable[[View], View]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not has_role(request.user, role):
                raise PermissionDenied(f"needs the {role} role")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def permission_required_or_403(*perms: str) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perms(perms):
                raise PermissionDenied("missing permission")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
