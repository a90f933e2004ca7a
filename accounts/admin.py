"""The Django admin as the roles see it.

The admin role is staff, so it reaches /admin/, where its model permissions decide what it sees of
the product's own models (ROLE_ADMIN_APPS). Every other model in the admin (users, groups, django-q2's
schedules and tasks, social-auth's associations, anything a future app registers) is for superusers
only, whatever permissions a role holds: changing those grants rights or runs code on the worker.
"""

from __future__ import annotations

from django.contrib import admin

from accounts.models import ApiToken

# Apps whose models the admin role may reach in the Django admin, within its permissions.
ROLE_ADMIN_APPS = frozenset({"mailer", "accounts", "axes"})


class SuperuserOnly:
    """Mixed into a ModelAdmin: nobody but a superuser sees or changes the model."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


def restrict_to_superusers(site: admin.AdminSite = admin.site) -> None:
    """Make every model outside ROLE_ADMIN_APPS superuser-only (run once every admin.py is loaded)."""
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label in ROLE_ADMIN_APPS or isinstance(model_admin, SuperuserOnly):
            continue
        base = type(model_admin)
        site.unregister(model)
        site.register(model, type(f"SuperuserOnly{base.__name__}", (SuperuserOnly, base), {}))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    # The owner is fixed: moving one's own token to another user would let it act as that user.
    readonly_fields = ["user", "prefix", "key_hash", "created_at", "expires_at", "last_used_at"]

    def has_add_permission(self, request) -> bool:
        # Tokens are issued on the Tokens page, where the raw token is shown once.
        return False
