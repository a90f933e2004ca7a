from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone, translation

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", help="run the slow tests too (marker slow), as CI does")


def pytest_collection_modifyitems(config, items):
    """Leave out the slow tests, unless asked for: --all, a -m of one's own (-m "" for all), or a
    test by its id."""
    asked = config.option.markexpr or "-m" in config.invocation_params.args
    if config.getoption("--all") or asked or any("::" in arg for arg in config.args):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def load_settings(*names: str, without: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
    """Import mailer.settings in a fresh interpreter, with `env` and without the variables whose
    names start with one of `without`, and print the named settings on one line."""
    code = f"import mailer.settings as s; print({', '.join(f's.{name}' for name in names)})"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(without)}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


AUTH0_BACKEND = "social_core.backends.auth0.Auth0OAuth2"


def enable_auth0(settings, domain: str, client_id: str, secret: str) -> None:
    """Auth0 on, as mailer.settings sets it up when the three AUTH0_* variables are given."""
    settings.AUTH0_DOMAIN = settings.SOCIAL_AUTH_AUTH0_DOMAIN = domain
    settings.AUTH0_CLIENT_ID = settings.SOCIAL_AUTH_AUTH0_KEY = client_id
    settings.AUTH0_CLIENT_SECRET = settings.SOCIAL_AUTH_AUTH0_SECRET = secret
    settings.AUTH0_ENABLED = True
    if AUTH0_BACKEND not in settings.AUTHENTICATION_BACKENDS:
        settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, AUTH0_BACKEND]


@pytest.fixture(autouse=True)
def _fast_and_plain(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The manifest needs collectstatic; tests serve static files as they are.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    yield
    # A request leaves its language active in the thread: the next test starts from the default.
    translation.deactivate()


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


CONSENTED = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def make_client(db):
    from mailer.models import Client

    counter = iter(range(10_000_000))

    def make(phone: str | None = None, **fields) -> Client:
        phone = phone or f"7900{next(counter):07d}"
        fields.setdefault("timezone", "UTC")
        # Advertising (the default kind) reaches only clients with consent (MAILER_CONSENT_REQUIRED).
        fields.setdefault("consent_at", CONSENTED)
        fields.setdefault("consent_source", "test" if fields["consent_at"] else "")
        return Client.objects.create(phone=phone, **fields)

    return make


@pytest.fixture
def make_mailing(db, now):
    from mailer.models import Mailing

    def make(**fields) -> Mailing:
        fields.setdefault("text", "Hello")
        fields.setdefault("start_at", now - timedelta(minutes=1))
        fields.setdefault("end_at", now + timedelta(hours=1))
        return Mailing.objects.create(**fields)

    return make


def user_with_role(django_user_model, role: str, username: str | None = None):
    from accounts.roles import set_role

    user = django_user_model.objects.create_user(username or role, password="pw")
    set_role(user, role)
    return user
