from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.admin import restrict_to_superusers
        from accounts.roles import ensure_roles

        post_migrate.connect(ensure_roles, sender=self)
        # django.contrib.admin comes first in INSTALLED_APPS, so every admin.py is loaded by now.
        restrict_to_superusers()
