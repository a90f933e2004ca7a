from __future__ import annotations

import pytest

from tests.api.conftest import _client_for
from tests.conftest import user_with_role


@pytest.fixture
def manager(db, django_user_model):
    return user_with_role(django_user_model, "manager")


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def api(manager):
    return _client_for(manager)


HTMX = {"HTTP_HX_REQUEST": "true"}


# The engine with the gateway's stand-in over HTTP (tests/engine/conftest.py).
from tests.engine.conftest import _fresh_provider_state, make_deliverer, provider  # noqa: E402, F401
