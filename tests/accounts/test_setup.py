"""Settings and commands around accounts: Auth0 configuration, createsuperuser, the demo login."""

from __future__ import annotations

import subprocess

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command

from accounts.roles import ADMIN, role_of
from tests.conftest import load_settings

AUTH0 = {"AUTH0_DOMAIN": "https://127.0.0.1:8101/", "AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "s"}


def auth0_settings(*names: str, **env: str) -> subprocess.CompletedProcess:
    return load_settings(*names, without=("AUTH0_",), SECRET_KEY="x", **env)


def load_auth0(**env: str) -> subprocess.CompletedProcess:
    return auth0_settings("AUTH0_ENABLED", "AUTHENTICATION_BACKENDS[-1]", "AUTH0_ALLOWED_DOMAINS", **env)


def test_auth0_is_off_without_its_variables():
    result = load_auth0()

    assert result.stdout.split()[:2] == ["False", "django.contrib.auth.backends.ModelBackend"]


def test_auth0_is_on_with_all_three_variables():
    result = load_auth0(
        AUTH0_DOMAIN="https://t.eu.auth0.com/",
        AUTH0_CLIENT_ID="id",
        AUTH0_CLIENT_SECRET="auth0-client-secret",
        AUTH0_ALLOWED_DOMAINS="Example.com, @corp.example",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "True social_core.backends.auth0.Auth0OAuth2 ['example.com', 'corp.example']"
    )


def test_partial_auth0_configuration_fails_naming_what_is_missing():
    result = load_auth0(AUTH0_DOMAIN="t.eu.auth0.com", AUTH0_CLIENT_ID="id")

    assert result.returncode != 0
    assert "AUTH0_CLIENT_SECRET unset" in result.stderr


@pytest.mark.django_db
def test_createsuperuser_still_works(client, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "s3cret-Pass")
    call_command("createsuperuser", "--noinput", username="root", email="root@example.com", verbosity=0)

    client.post("/accounts/login/", {"username": "root", "password": "s3cret-Pass"})

    assert SESSION_KEY in client.session
    assert client.get("/accounts/users/").status_code == 200
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_demo_login_is_an_admin(client, django_user_model):
    call_command("seed_demo", clients=3, no_mailings=True, verbosity=0)

    client.post("/accounts/login/", {"username": "demo", "password": "demo"})

    assert role_of(django_user_model.objects.get(username="demo")) == ADMIN
    assert client.get("/accounts/users/").status_code == 200


# AUTH0_CA_BUNDLE: the CA that Auth0's certificate is checked against (the local stand-in's).


def test_the_bundle_is_what_social_auth_verifies_with(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")

    result = auth0_settings(
        "SOCIAL_AUTH_AUTH0_VERIFY_SSL", "SOCIAL_AUTH_AUTH0_DOMAIN", AUTH0_CA_BUNDLE=str(bundle), **AUTH0
    )

    assert result.returncode == 0, result.stderr
    # The port stays in the domain: the local stand-in is "127.0.0.1:PORT".
    assert result.stdout.split() == [str(bundle), "127.0.0.1:8101"]


def test_without_a_bundle_the_system_cas_verify():
    result = auth0_settings("SOCIAL_AUTH_AUTH0_VERIFY_SSL", "SOCIAL_AUTH_AUTH0_DOMAIN", **AUTH0)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"


def test_a_missing_bundle_fails_naming_the_variable(tmp_path):
    result = auth0_settings(
        "SOCIAL_AUTH_AUTH0_VERIFY_SSL",
        "SOCIAL_AUTH_AUTH0_DOMAIN",
        AUTH0_CA_BUNDLE=str(tmp_path / "nowhere.pem"),
        **AUTH0,
    )

    assert result.returncode != 0
    assert "AUTH0_CA_BUNDLE must be a PEM file" in result.stderr
