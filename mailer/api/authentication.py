"""Personal API tokens: `Authorization: Bearer <token>`, looked up by hash (accounts.ApiToken)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import ApiToken
from mailer import receipts

# Recording every use would turn every API read into a write; a minute is precise enough to see
# which tokens are still in use.
LAST_USED_PRECISION = timedelta(minutes=1)


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Give the token as `Authorization: Bearer <token>`."))
        try:
            raw = parts[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        token = ApiToken.find_usable(raw)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                _("This token expired at %(expired_at)s; create a new one on the Tokens page.")
                % {"expired_at": token.expires_at.isoformat()}
            )
        self._touch(token)
        return token.user, token

    @staticmethod
    def _touch(token: ApiToken) -> None:
        now = timezone.now()
        if token.last_used_at is None or token.last_used_at < now - LAST_USED_PRECISION:
            # Conditional, so that concurrent requests write it once.
            ApiToken.objects.filter(pk=token.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
            ).update(last_used_at=now)
            token.last_used_at = now

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return f'{self.keyword} realm="api"'


class ReceiptTokenAuthentication(BaseAuthentication):
    """The SMS gateway's way in, for delivery receipts only: `Authorization: Bearer
    <MAILER_RECEIPT_TOKEN>`, compared in constant time. No user: the gateway is none. While the
    setting is unset the door is shut (404)."""

    def authenticate(self, request: Request):
        if not settings.MAILER_RECEIPT_TOKEN:
            raise exceptions.NotFound(_("Delivery receipts are off: MAILER_RECEIPT_TOKEN is not set."))
        if not receipts.token_ok(request.headers.get("Authorization", "")):
            raise exceptions.AuthenticationFailed(
                _("Give the receipts token as `Authorization: Bearer <token>`.")
            )
        return AnonymousUser(), "gateway"

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="receipts"'


class ReceiptTokenScheme(OpenApiAuthenticationExtension):
    target_class = "mailer.api.authentication.ReceiptTokenAuthentication"
    name = "receiptToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "MAILER_RECEIPT_TOKEN, the secret the product shares with its SMS gateway.",
        }


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "mailer.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mlr_…",
            "description": (
                "A personal API token. Staff create one with `python manage.py api_token USERNAME "
                "--name NAME` (shown once; only its hash is stored). Send it as "
                "`Authorization: Bearer mlr_...`. A revoked or expired token, or one whose user is inactive, gets 401."
            ),
        }
