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


def refuse_inactive(backend, details: dict, user=None, *args, **kwargs) -> None:
    if user is not None and not user.is_active:
        raise _refuse(backend, details.get("email", ""), gettext_noop("Your account has been deactivated."))


def associate_by_verified_email(backend, details: dict, user=None, *args, **kwargs) -> dict | None:
    """Sign a person in to the existing account with their address, keeping its role.

    Safe because require_allowed_email has already insisted on an address Auth0 verified.
    """
    if user is not None:
        return None
    email = details["email"].strip().lower()
    matches = list(get_user_model().objects.filter(email__iexact=email)[:2])
    if len(matches) > 1:
        raise _refuse(
            backend,
            email,
            gettext_noop("Several accounts use %(email)s; an administrator has to sort that out first."),
            email=email,
        )
    if matches and not matches[0].is_active:
        raise _refuse(backend, email, gettext_noop("Your account has been deactivated."))
    return {"user": matches[0]} if matches else None


def create_viewer(strategy, details: dict, backend, user=None, *args, **kwargs) -> dict | None:
    """First sign-in: a new user with the lowest role; never a user without a role."""
    if user is not None:
        return {"is_new": False}
    with transaction.atomic():
        result = create_user(strategy, details, backend, None, *args, **kwargs)
        set_role(result["user"], VIEWER)
    logger.info("created user %s (viewer) on first Auth0 sign-in", result["user"].get_username())
    return result
