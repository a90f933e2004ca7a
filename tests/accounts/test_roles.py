"""What each role may do, as the dashboard and API check it: `user.has_perm` and the Django admin."""

from __future__ import annotations

import pytest

from accounts.roles import ADMIN, MANAGER, VIEWER, role_of, set_role
from tests.conftest import user_with_role

pytestmark = pytest.mark.django_db

PERMS = [
    "mailer.view_mailing",
    "mailer.add_mailing",
    "mailer.change_mailing",
    "mailer.change_client",
    "auth.view_user",
]
EXPECTED = {
    VIEWER: {"mailer.view_mailing"},
    MANAGER: {"mailer.view_mailing", "mailer.add_mailing", "mailer.change_mailing", "mailer.change_client"},
    ADMIN: set(PERMS),
}


@pytest.mark.parametrize("role", [VIEWER, MANAGER, ADMIN])
def test_role_permissions(django_user_model, role):
    user = user_with_role(django_user_model, role)

    assert {perm for perm in PERMS if user.has_perm(perm)} == EXPECTED[role]
    assert role_of(user) == role


@pytest.mark.parametrize(("role", "admin_status"), [(VIEWER, 302), (MANAGER, 302), (ADMIN, 200)])
def test_only_admins_reach_the_django_admin(client, django_user_model, role, admin_status):
    client.force_login(user_with_role(django_user_model, role))

    response = client.get("/admin/")

    assert response.status_code == admin_status
    if admin_status == 302:
        assert response["Location"].startswith("/admin/login/")


def test_admin_role_reaches_the_products_models_in_the_django_admin(client, django_user_model):
    client.force_login(user_with_role(django_user_model, ADMIN))

    assert client.get("/admin/mailer/mailing/").status_code == 200
    assert client.get("/admin/accounts/apitoken/").status_code == 200
    assert client.get("/admin/axes/accessattempt/").status_code == 200


def test_a_user_without_role_may_do_nothing(django_user_model):
    user = django_user_model.objects.create_user("nobody", password="pw")

    assert not any(user.has_perm(perm) for perm in PERMS)
    assert role_of(user) is None


def test_demoting_an_admin_takes_staff_away(django_user_model):
    user = user_with_role(django_user_model, ADMIN)

    set_role(user, VIEWER)

    user = django_user_model.objects.get(pk=user.pk)  # fresh permission cache
    assert not user.is_staff
    assert not user.has_perm("mailer.add_mailing")
    assert list(user.groups.values_list("name", flat=True)) == [VIEWER]


def test_unknown_role_is_a_programming_error(django_user_model):
    with pytest.raises(ValueError, match="unknown role"):
        set_role(django_user_model.objects.create_user("x"), "owner")
