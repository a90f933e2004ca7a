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


def _user_with(django_user_model, perms) -> object:
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("someone", password="pw")
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def _doors(act: str) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """The rule of an act and its doors: the dashboard's pages and the API's endpoints."""
    from datetime import timedelta

    from django.utils import timezone

    from mailer import importing, stats
    from mailer.models import ClientImport, ImportState, Mailing

    if act == "import":
        imp = ClientImport.objects.create(state=ImportState.DONE).pk
        doors = [f"/clients/import/{imp}/", f"/clients/import/{imp}/errors.csv"]
        doors += [f"/api/v1/clients/imports/{imp}/"]
        return importing.PERMISSIONS, [("get", "/clients/import/"), ("post", "/api/v1/clients/import/")] + [
            ("get", door) for door in doors
        ]
    now = timezone.now()
    mailing = Mailing.objects.create(text="x", start_at=now, end_at=now + timedelta(hours=1)).pk
    doors = ["/statistics/", "/statistics/totals/", "/statistics/mailings.csv", "/api/v1/stats/"]
    return stats.PERMISSIONS, [("get", door) for door in [*doors, f"/api/v1/mailings/{mailing}/stats/"]]


@pytest.mark.parametrize("act", ["import", "statistics"])
def test_the_dashboard_and_the_api_ask_the_same_permissions_for_an_act(django_user_model, act):
    """An import needs add_client and change_client (it creates and updates clients); statistics
    need view_mailing (they are counts kept per mailing, not the messages). Both doors ask the
    one rule: all its permissions let a user in, any one missing keeps them out."""
    from rest_framework.test import APIClient

    perms, doors = _doors(act)
    for missing in (None, *perms):
        django_user_model.objects.filter(username="someone").delete()
        client = APIClient()
        client.force_login(_user_with(django_user_model, [p for p in perms if p != missing]))
        for method, url in doors:
            status = getattr(client, method)(url).status_code
            assert (status == 403) == (missing is not None), f"{method} {url} without {missing}: {status}"
