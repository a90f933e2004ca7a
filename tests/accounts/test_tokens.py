from __future__ import annotations

import re
from datetime import timedelta

import pytest

from accounts.models import ApiToken, hash_token
from accounts.roles import ADMIN, MANAGER, VIEWER
from tests.conftest import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client, django_user_model):
    user = user_with_role(django_user_model, VIEWER, "alice")
    client.force_login(user)
    return user


def test_create_shows_the_token_once_and_stores_only_its_hash(client, alice):
    response = client.post("/accounts/tokens/new/", {"name": "CRM import"})

    assert response.status_code == 200
    raw = re.search(r'value="(mlr_[^"]+)"', response.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.key_hash) == (alice, "CRM import", hash_token(raw))
    assert raw not in (token.key_hash, token.prefix)
    assert raw.startswith(token.prefix)
    assert ApiToken.find_usable(raw) == token

    listing = client.get("/accounts/tokens/").content.decode()
    assert raw not in listing
    assert token.prefix in listing
    assert "CRM import" in listing


def test_name_is_required(client, alice):
    response = client.post("/accounts/tokens/new/", {"name": "  "})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_list_shows_own_tokens_only_to_non_admins(client, alice, django_user_model):
    ApiToken.issue(alice, "mine")
    ApiToken.issue(user_with_role(django_user_model, MANAGER, "carol"), "carols")

    page = client.get("/accounts/tokens/")

    assert [t.name for t in page.context["tokens"]] == ["mine"]
    assert page.context["others"] is None
    assert "carols" not in page.content.decode()


def test_revoke_own_token(client, alice):
    token, raw = ApiToken.issue(alice, "old")

    response = client.post(f"/accounts/tokens/{token.pk}/revoke/", follow=True)

    assert "is revoked" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiToken.find_usable(raw) is None


@pytest.mark.parametrize("role", [VIEWER, MANAGER])
def test_non_admin_cannot_revoke_others_tokens(client, django_user_model, role):
    token, raw = ApiToken.issue(user_with_role(django_user_model, VIEWER, "victim"), "theirs")
    client.force_login(user_with_role(django_user_model, role, "someone"))

    assert client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.find_usable(raw) == token


def test_admin_sees_and_revokes_others_tokens(client, django_user_model):
    token, raw = ApiToken.issue(user_with_role(django_user_model, VIEWER, "bob"), "bobs script")
    client.force_login(user_with_role(django_user_model, ADMIN, "boss"))

    page = client.get("/accounts/tokens/")
    assert [t.name for t in page.context["others"]] == ["bobs script"]
    assert "bobs script" in page.content.decode()

    client.post(f"/accounts/tokens/{token.pk}/revoke/")
    assert ApiToken.find_usable(raw) is None


def test_token_mutations_need_post(client, alice):
    token, _ = ApiToken.issue(alice, "x")

    assert client.get("/accounts/tokens/new/").status_code == 405
    assert client.get(f"/accounts/tokens/{token.pk}/revoke/").status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


def test_anonymous_cannot_create(client):
    response = client.post("/accounts/tokens/new/", {"name": "x"})

    assert response.status_code == 302
    assert not ApiToken.objects.exists()


def test_the_page_with_a_new_token_is_never_cached(client, alice):
    response = client.post("/accounts/tokens/new/", {"name": "CRM import"})

    assert "no-store" in response["Cache-Control"]


def test_create_with_an_expiry_and_the_list_shows_it_and_the_last_use(client, alice):
    from django.utils import timezone

    response = client.post("/accounts/tokens/new/", {"name": "CRM import", "days": "7"})

    token = ApiToken.objects.get()
    assert response.status_code == 200
    assert timedelta(days=6, hours=23) < token.expires_at - timezone.now() <= timedelta(days=7)
    raw = re.search(r'value="(mlr_[^"]+)"', response.content.decode()).group(1)
    assert client.get("/api/v1/stats/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    token.refresh_from_db()
    listing = client.get("/accounts/tokens/").content.decode()
    assert "Expires" in listing and "Last used" in listing
    assert "never</td>" not in listing  # neither the expiry nor the last use is empty now
    token.expires_at = timezone.now() - timedelta(minutes=1)
    token.save()
    assert "expired</span>" in client.get("/accounts/tokens/").content.decode()


def test_an_unknown_expiry_is_a_form_error(client, alice):
    response = client.post("/accounts/tokens/new/", {"name": "x", "days": "100000"})

    assert response.status_code == 400
    assert not ApiToken.objects.exists()
