"""Role checks: Django model permissions, including `view_*` for reads (accounts/roles.py)."""

from __future__ import annotations

from typing import ClassVar

from rest_framework.permissions import DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    """Model permissions by method; a view may name the permissions of an action instead, or of
    all its methods.

    Actions that are not plain CRUD say what they need in `action_permissions`, e.g. pausing a
    mailing (a POST) needs `mailer.change_mailing`, not `add_mailing`; a view that is not about one
    model says it in `required_permissions`. An act the dashboard offers too names the rule both
    doors ask (`importing.PERMISSIONS`, `stats.PERMISSIONS`).
    """

    perms_map: ClassVar[dict[str, list[str]]] = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if getattr(view, "_ignore_model_permissions", False):
            return True
        if not hasattr(view, request.method.lower()):
            return True  # a method the endpoint does not have: 405 (from the view), not 403

        perms = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if perms is None:
            perms = getattr(view, "required_permissions", None)
        if perms is not None:
            return request.user.has_perms(perms)
        return super().has_permission(request, view)

    def _queryset(self, view):
        # The class attribute when there is one: a get_queryset() that looks up a parent object
        # would answer 404 before the role check had a chance to answer 403.
        if getattr(view, "queryset", None) is not None:
            return view.queryset
        return super()._queryset(view)
