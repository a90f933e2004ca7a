"""Our steps in the social-auth pipeline (SOCIAL_AUTH_PIPELINE in settings): who may sign in with Auth0.

Every refusal happens before a user row is written, so a refused person leaves nothing behind.
The message of SignInRefused is what the refusal page shows.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext, gettext_noop
from social_core.exceptions import AuthPolicyError
from social_core.pipeline.user import create_user

from accounts.roles import VIEWER, set_role

logger = logging.getLogger(__name__)


class SignInRefused(AuthPolicyError):
    def __init__(self, backend, reason: str) -> None:
        super().__init__(backend, reason, code="authentication_disallowed", stage="pipeline")
        # social-auth shows str(exception); by default that is a generic "not allowed by policy".
        self.args = (reason,)


def _refuse(backend, address: str, reason: str, **params) -> SignInRefused:
    """`reason` is marked with gettext_noop: the log says it in English, the person reads it in
    their language; `params` fill its %(name)s placeholders."""
    logger.warning("refused Auth0 sign-in of %r: %s", address, reason % params if params else reason)
    return SignInRefused(backend, gettext(reason) % params if params else gettext(reason))


def require_allowed_email(backend, details: dict, *args, **kwargs) -> None:
    """Admit verified addresses on AUTH0_ALLOWED_EMAILS or in AUTH0_ALLOWED_DOMAINS, nobody else.

    Also for people who signed in before: taking someone off the lists locks them out.
    """
    email = (details.get("email") or "").strip().lower()
    domains, emails = settings.AUTH0_ALLOWED_DOMAINS, settings.AUTH0_ALLOWED_EMAILS
    if not domains and not emails:
        # An Auth0 tenant may let anyone sign up, so no list must not mean "everyone".
        raise _refuse(
            backend,
            email,
            gettext_noop(
                "Single sign-on admits nobody yet: the administrator has not set "
                "AUTH0_ALLOWED_DOMAINS or AUTH0_ALLOWED_EMAILS."
            ),
        )
    if "@" not in email:
        raise _refuse(
            backend, email, gettext_noop("Auth0 did not tell us your email address, so we cannot admit you.")
        )
    if details.get("email_verified") is not True:
        raise _refuse(
            backend,
            email,
            gettext_noop(
                "Your email address %(email)s is not verified with Auth0 yet. "
                "Verify it (see the email from Auth0), then sign in again."
            ),
            email=email,
        )
    if email not in emails and email.rpartition("@")[2] not in domains:
        raise _refuse(
            backend,
            email,
            gettext_noop("%(email)s may not sign in here. Ask an administrator to add your address."),
            email=email,
        )


def _barred(user) -> str | None:
    """Why single sign-on may never sign in to `user` (for gettext_noop), or None. A superuser's
    account is for its password alone: an Auth0 tenant's admin, or whoever holds the address there,
    must not become a superuser here."""
    if not user.is_active:
        return gettext_noop("Your account has been deactivated.")
    if user.is_superuser:
        return gettext_noop(
            "Single sign-on never signs in to a superuser account: sign in with your password."
        )
    return None


def refuse_barred(backend, details: dict, user=None, *args, **kwargs) -> None:
    """An account linked already (or the one signed in, linking Auth0) may have been barred since."""
    if user is not None and (reason := _barred(user)):
        raise _refuse(backend, details.get("email", ""), reason)


def associate_by_verified_email(backend, details: dict, user=None, *args, **kwargs) -> dict | None:
    """Sign a person in to the existing account with their address, keeping its role: an account
    without a password (made for single sign-on) or one linked to Auth0 before. An account with a
    password is its owner's to link, signed in with it (the Profile page): otherwise whoever
    holds the address at Auth0 would take over an account that never chose single sign-on.

    The address is one Auth0 verified: require_allowed_email has insisted on that.
    """
    if user is not None:
        return None
    email = details["email"].strip().lower()
    matches = list(get_user_model().objects.filter(email__iexact=email)[:2])
    if not matches:
        return None
    if len(matches) > 1:
        raise _refuse(
            backend,
            email,
            gettext_noop("Several accounts use %(email)s; an administrator has to sort that out first."),
            email=email,
        )
    match = matches[0]
    if reason := _barred(match):
        raise _refuse(backend, email, reason)
    if match.has_usable_password() and not match.social_auth.exists():
        raise _refuse(
            backend,
            email,
            gettext_noop(
                "%(email)s belongs to an account that signs in with a password. To use single "
                "sign-on with it, sign in with the password and link Auth0 on your Profile page."
            ),
            email=email,
        )
    return {"user": match}


def create_viewer(strategy, details: dict, backend, user=None, *args, **kwargs) -> dict | None:
    """First sign-in: a new user with the lowest role; never a user without a role."""
    if user is not None:
        return {"is_new": False}
    with transaction.atomic():
        result = create_user(strategy, details, backend, None, *args, **kwargs)
        set_role(result["user"], VIEWER)
    logger.info("created user %s (viewer) on first Auth0 sign-in", result["user"].get_username())
    return result
