from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone


@pytest.fixture(autouse=True)
def _fast_and_plain(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The manifest needs collectstatic; tests serve static files as they are.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def make_client(db):
    from mailer.models import Client

    counter = iter(range(10_000_000))

    def make(phone: str | None = None, **fields) -> Client:
        phone = phone or f"7900{next(counter):07d}"
        fields.setdefault("timezone", "UTC")
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
