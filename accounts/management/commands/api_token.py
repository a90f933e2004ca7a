"""Issue a personal API token for a user and print it; only its hash is stored, so this is the one chance to copy it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (shown once). Revoke it in the admin."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label to tell the user's tokens apart.")
        parser.add_argument("--days", type=int, help="Days until the token expires (default: never).")

    def handle(self, *args, username: str, name: str, days: int | None, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would not work.")
        name = name.strip()
        if not name or len(name) > ApiToken._meta.get_field("name").max_length:
            raise CommandError("--name must be 1 to 100 characters.")
        if days is not None and days < 1:
            raise CommandError("--days must be 1 or more.")
        token, raw = ApiToken.issue(user, name, days=days)
        self.stderr.write(
            f"Token {token.prefix}… ({name}) for {username}"
            + (f", expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "")
            + ". Copy it now, it is not shown again:"
        )
        # Only the token on stdout, so that `TOKEN=$(manage.py api_token bob)` works.
        self.stdout.write(raw)
