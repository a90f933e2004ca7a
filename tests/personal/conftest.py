from __future__ import annotations

import pytest
from django.test import Client

from mailer.models import ClientField
from tests.conftest import user_with_role
from tests.guardrails.conftest import HTMX, api, manager, manager_client  # noqa: F401


@pytest.fixture
def admin_client(db, django_user_model):
    """A browser of its own (the `client` fixture is manager_client's)."""
    client = Client()
    client.force_login(user_with_role(django_user_model, "admin", "the-admin"))
    return client


@pytest.fixture
def fields(db):
    """Two declared custom fields, as an admin would: a city and a promo code."""
    ClientField.objects.create(key="city", label="Город")
    ClientField.objects.create(key="promo_code", label="Промокод")
    return ClientField.declared()


# The engine with the gateway's stand-in over HTTP (tests/engine/conftest.py).
from tests.engine.conftest import _fresh_provider_state, make_deliverer, provider  # noqa: E402, F401
