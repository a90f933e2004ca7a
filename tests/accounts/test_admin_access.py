"""The admin role in the Django admin: the product's models, never rights, superusers or code."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django_q.models import Schedule

from accounts.admin import ROLE_ADMIN_APPS
from accounts.models import ApiToken
from accounts.roles import ADMIN

pytestmark = pytest.mark.django_db

SUPERUSER_ONLY = sorted(
    f"{model._meta.app_label}.{model._meta.model_name}"
    for model in admin.site._registry
    if model._meta.app_label not in ROLE_ADMIN_APPS
)


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-password")


def test_the_list_covers_what_can_grant_rights_or_run_code():
    assert {
        "auth.user",
        "auth.group",
        "django_q.schedule",
        "django_q.ormq",
        "social_django.usersocialauth",
    } <= set(SUPERUSER_ONLY)


@pytest.mark.parametrize("label", SUPERUSER_ONLY)
def test_admin_role_gets_403_on_every_model_outside_the_product(client, admin, root, label):
    app_label, model_name = label.split(".")
    changelist = reverse(f"admin:{app_label}_{model_name}_changelist")

    assert client.get(changelist).status_code == 403
    assert client.get(reverse(f"admin:{app_label}_{model_name}_add")).status_code == 403
    client.force_login(root)
    assert client.get(changelist).status_code == 200


def test_admin_index_shows_the_admin_role_only_the_product(client, admin):
    apps = {app["app_label"] for app in client.get("/admin/").context["app_list"]}

    assert apps and apps <= ROLE_ADMIN_APPS


def test_admin_role_cannot_make_itself_superuser(client, admin):
    response = client.post(
        f"/admin/auth/user/{admin.pk}/change/",
        {"username": "boss", "is_active": "on", "is_staff": "on", "is_superuser": "on"},
    )

    assert response.status_code == 403
    admin.refresh_from_db()
    assert not admin.is_superuser


def test_admin_role_cannot_set_a_superusers_password(client, admin, root):
    url = f"/admin/auth/user/{root.pk}/password/"
    assert client.get(url).status_code == 403
    response = client.post(
        url, {"password1": "Taken-over-1", "password2": "Taken-over-1", "usable_password": "true"}
    )

    assert response.status_code == 403
    root.refresh_from_db()
    assert root.check_password("root-password")


def test_admin_role_cannot_add_permissions_to_a_group(client, admin):
    group = Group.objects.get(name=ADMIN)
    before = set(group.permissions.all())
    everything = Permission.objects.values_list("pk", flat=True)

    response = client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": ADMIN, "permissions": [str(pk) for pk in everything]},
    )

    assert response.status_code == 403
    assert set(group.permissions.all()) == before


def test_admin_role_cannot_schedule_code_on_the_worker(client, admin):
    response = client.post(
        "/admin/django_q/schedule/add/",
        {
            "name": "pwn",
            "func": "os.system",
            "args": "'touch /tmp/pwned'",
            "schedule_type": "O",
            "repeats": "-1",
        },
    )

    assert response.status_code == 403
    assert not Schedule.objects.filter(func="os.system").exists()


def test_a_tokens_owner_cannot_be_changed_in_the_admin(client, admin, root):
    token, _ = ApiToken.issue(admin, "mine")

    client.post(f"/admin/accounts/apitoken/{token.pk}/change/", {"name": "mine", "user": str(root.pk)})

    token.refresh_from_db()
    assert token.user == admin
    assert client.get("/admin/accounts/apitoken/add/").status_code == 403
