"""Issue a personal API token for a user and print it; only its hash is stored, so this is the one chance to copy it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

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
            raise CommandError(_("No user named %(username)s.") % {"username": repr(username)}) from None
        if not user.is_active:
            raise CommandError(
                _("User %(username)s is inactive; its tokens would not work.") % {"username": repr(username)}
            )
        name = name.strip()
        if not name or len(name) > ApiToken._meta.get_field("name").max_length:
            raise CommandError(_("--name must be 1 to 100 characters."))
        if days is not None and days < 1:
            raise CommandError(_("--days must be 1 or more."))
        token, raw = ApiToken.issue(user, name, days=days, via="cli")
        params = {"prefix": token.prefix, "name": name, "username": username}
        if token.expires_at:
            params["expires_at"] = f"{token.expires_at:%Y-%m-%d %H:%M}"
            message = _(
                "Token %(prefix)s… (%(name)s) for %(username)s, expires %(expires_at)s UTC. "
                "Copy it now, it is not shown again:"
            )
        else:
            message = _("Token %(prefix)s… (%(name)s) for %(username)s. Copy it now, it is not shown again:")
        self.stderr.write(message % params)
        # Only the token on stdout, so that `TOKEN=$(manage.py api_token bob)` works.
        self.stdout.write(raw)
