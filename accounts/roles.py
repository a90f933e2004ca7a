"""Roles are Django groups with model permissions; they are kept in sync after every migrate.

viewer: read everything and export. manager: also create, edit and control mailings and clients,
and approve other people's big mailings. admin: also other people's roles and activation,
everyone's API tokens, unlocking sign-ins, and the product's models in the Django admin (admins
are staff). Never superuser status, permissions, groups, superusers' accounts or anything that
runs code: that is for superusers, who are created from the command line (`manage.py
createsuperuser`). What each role may do, page by page: docs/security.md (checked against the
URLconf by tests/accounts/test_access.py).
"""

from __future__ import annotations

from django.utils.translation import pgettext_lazy

VIEWER, MANAGER, ADMIN = "viewer", "manager", "admin"
ROLES = (VIEWER, MANAGER, ADMIN)
# What people read for a role (the group names above stay as they are: they are data).
ROLE_LABELS = {
    VIEWER: pgettext_lazy("role", "viewer"),
    MANAGER: pgettext_lazy("role", "manager"),
    ADMIN: pgettext_lazy("role", "admin"),
}

_VIEW = ["mailer.view_client", "mailer.view_mailing", "mailer.view_message", "mailer.view_stopentry"]
_MANAGE = [
    "mailer.add_client",
    "mailer.change_client",
    "mailer.delete_client",
    "mailer.add_mailing",
    "mailer.change_mailing",
    "mailer.delete_mailing",
    # The stop list: putting a phone on it, and taking it off (the entry stays, as the record).
    "mailer.add_stopentry",
    "mailer.change_stopentry",
]
# auth.view_user / auth.change_user open the product's Users page (roles, activation); the Django
# admin's user and group pages are for superusers whatever the permissions say (accounts/admin.py).
_ADMIN = [
    "auth.view_user",
    "auth.change_user",
    "accounts.view_apitoken",
    "accounts.change_apitoken",
    "accounts.delete_apitoken",
    # The audit log (who did what, when): the Audit page and /api/v1/audit/.
    "mailer.view_auditentry",
    # Declaring the clients' custom fields (texts name them: {city}); everyone who sees clients sees them.
    "mailer.add_clientfield",
    "mailer.change_clientfield",
    "mailer.delete_clientfield",
    # Unlocking a sign-in that django-axes locked: deleting its failed attempts (the Users page).
    "axes.view_accessattempt",
    "axes.delete_accessattempt",
]
# Approving or refusing a mailing above MAILER_APPROVAL_ABOVE: a second person's, never its author's
# (Mailing.approve checks that); managers and admins.
_APPROVE = ["mailer.approve_mailing"]
ROLE_PERMISSIONS = {
    VIEWER: _VIEW,
    MANAGER: _VIEW + _MANAGE + _APPROVE,
    ADMIN: _VIEW + _MANAGE + _APPROVE + _ADMIN,
}


def ensure_roles(**kwargs) -> None:
    from django.contrib.auth.models import Group, Permission

    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)


def set_role(user, role: str) -> None:
    """Give `user` exactly one role; admins are also staff so that they reach the Django admin."""
    from django.contrib.auth.models import Group

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    user.groups.add(Group.objects.get(name=role))
    if user.is_staff != (role == ADMIN) and not user.is_superuser:
        user.is_staff = role == ADMIN
        user.save(update_fields=["is_staff"])


def role_of(user) -> str | None:
    if user.is_superuser:
        return ADMIN
    # groups.all() rather than values_list: uses prefetch_related("groups") on the users page.
    names = {group.name for group in user.groups.all()}
    for role in (ADMIN, MANAGER, VIEWER):
        if role in names:
            return role
    return None
