"""The Django admin as the roles see it.

The admin role is staff, so it reaches /admin/, where it may *look at* the product's own models
(ROLE_ADMIN_APPS) within its view permissions, and change nothing: everything it does (roles,
unlocking sign-ins, revoking tokens, editing mailings and clients) is on the product's own pages,
where the model's rules and the audit log apply. Every other model in the admin (users, groups,
django-q2's schedules and tasks, social-auth's associations, anything a future app registers) is for
superusers only, whatever permissions a role holds: changing those grants rights or runs code on the
worker. What a superuser may still change here goes through the same model methods as the UI.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiToken
from mailer.admin import AuditedAdmin

# Apps whose models the admin role may reach in the Django admin, within its permissions.
ROLE_ADMIN_APPS = frozenset({"mailer", "accounts", "axes"})


class ChangedBySuperusersOnly:
    """Mixed into a ModelAdmin: others (within their view permission) may only look.

    Django's own actions need the add/change/delete permission, and every action of ours declares
    the one it needs (`permissions=["change"]`), so a read-only user runs none."""

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class SuperuserOnly(ChangedBySuperusersOnly):
    """Mixed into a ModelAdmin: nobody but a superuser sees or changes the model."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_view_permission(request, obj)


def restrict_to_superusers(site: admin.AdminSite = admin.site) -> None:
    """Make every model outside ROLE_ADMIN_APPS superuser-only, and those inside read-only for
    everyone but superusers (run once every admin.py is loaded)."""
    for model, model_admin in list(site._registry.items()):
        if isinstance(model_admin, ChangedBySuperusersOnly):
            continue
        mixin = ChangedBySuperusersOnly if model._meta.app_label in ROLE_ADMIN_APPS else SuperuserOnly
        base = type(model_admin)
        site.unregister(model)
        site.register(model, type(f"{mixin.__name__}{base.__name__}", (mixin, base), {}))


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    # The owner is fixed: moving one's own token to another user would let it act as that user.
    # Revoking is one-way: "revoked at" is set by the action below (ApiToken.revoke), never typed.
    readonly_fields = ["user", "prefix", "key_hash", "created_at", "expires_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        # Tokens are issued on the Tokens page, where the raw token is shown once.
        return False

    @admin.action(description=_("Revoke the selected API tokens"), permissions=["change"])
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True).select_related("user"):
            token.revoke(by=request.user, via="admin")
        self.message_user(request, _("Revoked."))

    def save_model(self, request, obj, form, change):
        # Only the name is written: a revoke made meanwhile must not be saved over.
        obj.save_by(request.user, via="admin", update_fields=["name"])
