"""Personal API tokens. Only a SHA-256 of the token is stored; the token is shown once."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mailer.models import Audited, AuditEntry, TimezoneField

TOKEN_PREFIX = "mlr_"


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def hash_token(raw: str) -> str:
    """SHA-256 of a secret, in hex: what is stored of API tokens and of a gateway token it refused."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(Audited, models.Model):
    # Renamed or deleted in the Django admin (save_by, delete_by); issued and revoked below.
    AUDIT_FIELDS = ("name", "prefix")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        _("prefix"), max_length=12, editable=False, help_text=_("Shown to tell tokens apart.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Empty: the token never expires.")
    )
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("api token")
        verbose_name_plural = _("api tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user, name: str, days: int | None = None, via: str = "ui") -> tuple[ApiToken, str]:
        """Create a token, valid for `days` (None: until revoked); returns the row and the raw
        token, which is not stored anywhere. The audit log records it in the same transaction."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = timezone.now() + timedelta(days=days) if days else None
        with transaction.atomic():
            token = cls.objects.create(
                user=user, name=name, key_hash=hash_token(raw), prefix=raw[:12], expires_at=expires_at
            )
            changes = {
                "name": [None, name],
                "prefix": [None, token.prefix],
                "expires_at": [None, _iso(expires_at)],
            }
            AuditEntry.record(user, "token_created", token, changes, via=via)
        return token, raw

    @classmethod
    def find_usable(cls, raw: str) -> ApiToken | None:
        """The token, unless it is unknown, revoked or its user inactive; an expired one is returned
        too, so that the caller can say so (see `is_expired`)."""
        return (
            cls.objects.select_related("user")
            .filter(key_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
            .first()
        )

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    def revoke(self, by=None, via: str = "ui") -> None:
        """Revoke it for good: nothing un-revokes a token (issue a new one instead)."""
        if self.revoked_at is None:
            with transaction.atomic():
                self.revoked_at = timezone.now()
                self.save(update_fields=["revoked_at"])
                changes = {
                    "revoked_at": [None, self.revoked_at.isoformat()],
                    "owner": [self.user.username] * 2,
                }
                AuditEntry.record(by, "token_revoked", self, changes, via=via)

    def audit_fields(self) -> dict:
        return {**super().audit_fields(), "owner": self.user.username}


class Profile(models.Model):
    """A user's own settings: the time zone every date of the UI is shown and typed in, and the
    language. Saved once the user chooses something (Profile.of reads it)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="profile"
    )
    # Empty until the user chooses (the first page after signing in proposes the browser's zone);
    # meanwhile the server's TIME_ZONE.
    timezone = TimezoneField(_("time zone"), blank=True)
    # Empty: the browser's (Accept-Language).
    language = models.CharField(_("language"), max_length=8, blank=True, choices=settings.LANGUAGES)

    class Meta:
        verbose_name = _("profile")

    def __str__(self) -> str:
        return f"Profile of {self.user}"

    @classmethod
    def of(cls, user) -> Profile:
        """The user's profile; an unsaved one (every field empty) until something is chosen, so that
        reading a page writes nothing."""
        return cls.objects.filter(user=user).first() or cls(user=user)

    @property
    def zone(self) -> str:
        """The time zone the user sees: theirs, or the server's until they choose."""
        return self.timezone or settings.TIME_ZONE
