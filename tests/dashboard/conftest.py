from __future__ import annotations

import pytest

from tests.conftest import user_with_role


@pytest.fixture
def viewer(django_user_model):
    return user_with_role(django_user_model, "viewer")


@pytest.fixture
def manager(django_user_model):
    return user_with_role(django_user_model, "manager")


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


HTMX = {"HTTP_HX_REQUEST": "true"}
