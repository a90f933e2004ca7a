from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client

from accounts.models import ApiToken
from accounts.roles import ADMIN, MANAGER, VIEWER, role_of
from mailer.models import AuditEntry
from tests.conftest import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(django_user_model):
    return user_with_role(django_user_model, VIEWER, "bob")


def test_admin_sees_users_with_roles(client, admin, bob, django_user_model):
    django_user_model.objects.create_user("norole", password="pw")

    page = client.get("/accounts/users/")

    assert page.status_code == 200
    rows = {row["user"].username: row["role"] for row in page.context["rows"]}
    assert rows == {"boss": ADMIN, "bob": VIEWER, "norole": None}
    assert 'href="/accounts/users/"' in page.content.decode()  # the nav link admins get


@pytest.mark.parametrize("role", [VIEWER, MANAGER])
def test_non_admins_may_not_see_or_change_users(client, django_user_model, bob, role):
    client.force_login(user_with_role(django_user_model, role, "someone"))

    assert client.get("/accounts/users/").status_code == 403
    assert client.post(f"/accounts/users/{bob.pk}/role/", {"role": ADMIN}).status_code == 403
    assert client.post(f"/accounts/users/{bob.pk}/active/", {"active": "0"}).status_code == 403
    assert client.post(f"/accounts/users/{bob.pk}/unlock/").status_code == 403
    bob.refresh_from_db()
    assert (role_of(bob), bob.is_active) == (VIEWER, True)
    assert 'href="/accounts/users/"' not in client.get("/accounts/tokens/").content.decode()


def test_admin_changes_a_role(client, admin, bob):
    response = client.post(f"/accounts/users/{bob.pk}/role/", {"role": MANAGER}, follow=True)

    assert role_of(bob) == MANAGER
    assert "bob is now manager." in response.content.decode()


def test_admin_makes_an_admin_staff(client, admin, bob):
    client.post(f"/accounts/users/{bob.pk}/role/", {"role": ADMIN})

    bob.refresh_from_db()
    assert bob.is_staff
    assert role_of(bob) == ADMIN


def test_unknown_role_is_refused(client, admin, bob):
    response = client.post(f"/accounts/users/{bob.pk}/role/", {"role": "owner"}, follow=True)

    assert role_of(bob) == VIEWER
    assert "Choose one of the roles" in response.content.decode()


def test_admin_role_may_not_touch_a_superuser(client, admin, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="pw")

    page = client.get("/accounts/users/").content.decode()
    assert f"/accounts/users/{root.pk}/" not in page  # no buttons that would only answer 403
    assert client.post(f"/accounts/users/{root.pk}/role/", {"role": VIEWER}).status_code == 403
    assert client.post(f"/accounts/users/{root.pk}/active/", {"active": "0"}).status_code == 403

    root.refresh_from_db()
    assert root.is_active and root.is_superuser and not root.groups.exists()


def test_superuser_may_deactivate_another_superuser(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    other = django_user_model.objects.create_superuser("root2", password="pw")

    response = client.post(f"/accounts/users/{other.pk}/active/", {"active": "0"})

    assert response.status_code == 302
    other.refresh_from_db()
    assert not other.is_active


def test_admin_cannot_change_own_role_or_deactivate_self(client, admin):
    assert client.post(f"/accounts/users/{admin.pk}/role/", {"role": VIEWER}).status_code == 404
    assert client.post(f"/accounts/users/{admin.pk}/active/", {"active": "0"}).status_code == 404
    assert client.post(f"/accounts/users/{admin.pk}/unlock/").status_code == 404
    admin.refresh_from_db()
    assert (role_of(admin), admin.is_active) == (ADMIN, True)


def test_deactivate_ends_sessions_and_tokens_then_reactivate(client, admin, bob):
    from django.test import Client

    bobs_browser = Client()
    bobs_browser.force_login(bob)
    _, raw = ApiToken.issue(bob, "script")

    response = client.post(f"/accounts/users/{bob.pk}/active/", {"active": "0"}, follow=True)

    assert "bob is deactivated" in response.content.decode()
    bob.refresh_from_db()
    assert not bob.is_active
    assert bobs_browser.get("/accounts/tokens/").status_code == 302  # back to the login page
    assert ApiToken.find_usable(raw) is None

    client.post(f"/accounts/users/{bob.pk}/active/", {"active": "1"})
    bob.refresh_from_db()
    assert bob.is_active
    assert ApiToken.find_usable(raw) is not None


def test_user_changes_need_post(client, admin, bob):
    assert client.get(f"/accounts/users/{bob.pk}/role/").status_code == 405
    assert client.get(f"/accounts/users/{bob.pk}/active/").status_code == 405
    assert client.get(f"/accounts/users/{bob.pk}/unlock/").status_code == 405


def test_unknown_user_is_404(client, admin):
    assert client.post("/accounts/users/999999/role/", {"role": VIEWER}).status_code == 404


def lock_out(username: str, settings) -> None:
    """Wrong passwords for `username` from one address until the username is locked there."""
    guesser = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        guesser.post(
            "/accounts/login/", {"username": username, "password": "wrong"}, REMOTE_ADDR="203.0.113.7"
        )


def signs_in(username: str) -> bool:
    response = Client().post(
        "/accounts/login/", {"username": username, "password": "pw"}, REMOTE_ADDR="203.0.113.7"
    )
    return response.status_code == 302


def test_admin_sees_who_is_locked_out_and_unlocks_a_manager(client, admin, bob, django_user_model, settings):
    mia = user_with_role(django_user_model, MANAGER, "mia")
    lock_out("mia", settings)
    assert not signs_in("mia")

    page = client.get("/accounts/users/")
    assert {row["user"].username for row in page.context["rows"] if row["locked"]} == {"mia"}
    assert f'action="/accounts/users/{mia.pk}/unlock/"' in page.content.decode()
    assert f'action="/accounts/users/{bob.pk}/unlock/"' not in page.content.decode()

    response = client.post(f"/accounts/users/{mia.pk}/unlock/", follow=True)

    assert "mia is unlocked." in response.content.decode()
    assert not any(row["locked"] for row in response.context["rows"])
    entry = AuditEntry.objects.get(action="unlocked")
    assert (entry.actor, entry.object_type, entry.object_id) == (admin, "user", str(mia.pk))
    # The wrong passwords, and the right one refused while locked.
    assert entry.changes == {"failures": [settings.AXES_FAILURE_LIMIT + 1, 0]}
    assert signs_in("mia")


def test_unlocking_someone_not_locked_changes_nothing(client, admin, bob):
    response = client.post(f"/accounts/users/{bob.pk}/unlock/", follow=True)

    assert "bob had no failed sign-ins." in response.content.decode()
    assert not AuditEntry.objects.exists()


def test_admin_role_may_not_unlock_a_superuser(client, admin, django_user_model, settings):
    root = django_user_model.objects.create_superuser("root", password="pw")
    lock_out("root", settings)

    page = client.get("/accounts/users/")
    assert [row["locked"] for row in page.context["rows"] if row["user"] == root] == [True]
    assert f"/accounts/users/{root.pk}/unlock/" not in page.content.decode()
    assert client.post(f"/accounts/users/{root.pk}/unlock/").status_code == 403

    assert AccessAttempt.objects.filter(username="root").exists()
    assert not signs_in("root")


def test_superuser_unlocks_another_superuser(client, django_user_model, settings):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    other = django_user_model.objects.create_superuser("root2", password="pw")
    lock_out("root2", settings)

    assert f'action="/accounts/users/{other.pk}/unlock/"' in client.get("/accounts/users/").content.decode()
    assert client.post(f"/accounts/users/{other.pk}/unlock/").status_code == 302

    assert signs_in("root2")


@pytest.mark.parametrize("role", [VIEWER, MANAGER, ADMIN])
def test_account_pages_are_out_of_the_main_navigation(client, django_user_model, role):
    """The work (Home, Mailings, Statistics, Clients) in the main navigation; one's own API tokens
    and, for admins, Users apart, with the account."""
    client.force_login(user_with_role(django_user_model, role, "someone"))
    html = client.get("/").content.decode()
    main = html.split('id="main-nav"')[1].split("</ul>")[0]
    account = html.split('id="account-nav"')[1].split("</ul>")[0]
    assert "/accounts/tokens/" not in main and "/accounts/users/" not in main
    assert 'href="/accounts/tokens/"' in account
    assert ('href="/accounts/users/"' in account) == (role == ADMIN)
