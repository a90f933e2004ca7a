from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.roles import ADMIN, MANAGER, VIEWER
from tests.conftest import user_with_role


def _client_for(user) -> APIClient:
    _, raw = ApiToken.issue(user, "tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_token = raw
    return client


@pytest.fixture
def manager(db, django_user_model):
    return user_with_role(django_user_model, MANAGER)


@pytest.fixture
def viewer(db, django_user_model):
    return user_with_role(django_user_model, VIEWER)


@pytest.fixture
def api(manager) -> APIClient:
    """A manager's token client: may read and change."""
    return _client_for(manager)


@pytest.fixture
def viewer_api(viewer) -> APIClient:
    return _client_for(viewer)


@pytest.fixture
def admin_api(db, django_user_model) -> APIClient:
    return _client_for(user_with_role(django_user_model, ADMIN))


@pytest.fixture
def anon() -> APIClient:
    return APIClient()
