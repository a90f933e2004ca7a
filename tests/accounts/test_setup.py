"""Settings and commands around accounts: Auth0 configuration, createsuperuser, the demo login."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command

from accounts.roles import ADMIN, role_of

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env: str) -> subprocess.CompletedProcess:
    code = "import mailer.settings as s; print(s.AUTH0_ENABLED, s.AUTHENTICATION_BACKENDS[-1], s.AUTH0_ALLOWED_DOMAINS)"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTH0_")}
    environ.update(SECRET_KEY="x", **env)
    return subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, env=environ, capture_output=True, text=True
    )


def test_auth0_is_off_without_its_variables():
    result = load_settings()

    assert result.stdout.split()[:2] == ["False", "django.contrib.auth.backends.ModelBackend"]


def test_auth0_is_on_with_all_three_variables():
    result = load_settings(
        AUTH0_DOMAIN="https://t.eu.auth0.com/",
        AUTH0_CLIENT_ID="id",
        AUTH0_CLIENT_SECRET="secret",
        AUTH0_ALLOWED_DOMAINS="Example.com, @corp.example",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "True social_core.backends.auth0.Auth0OAuth2 ['example.com', 'corp.example']"
    )


def test_partial_auth0_configuration_fails_naming_what_is_missing():
    result = load_settings(AUTH0_DOMAIN="t.eu.auth0.com", AUTH0_CLIENT_ID="id")

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
