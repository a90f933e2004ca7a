"""Property-based run of the API against its own OpenAPI schema: no 5xx, every response as described.

The schema is the document /api/schema/ serves (test_schema.py checks they are the same); it is
generated at collection time because schemathesis' lazy fixture loader does not support pytest 9.
Requests go straight into the WSGI application, inside the test's transaction.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from accounts.models import ApiToken
from accounts.roles import MANAGER
from mailer.models import Message, MessageStatus
from tests.conftest import user_with_role


def load_schema():
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    schema.app = get_wsgi_application()
    return schema


schema = load_schema()


@pytest.fixture
def token(db, django_user_model, make_client, make_mailing, now, settings) -> str:
    """A manager's token (the gateway's for receipts too, so one header opens every door), and a
    few rows for the requests to find."""
    # The test's transaction must survive the requests: Django's test client unhooks these too.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    user = user_with_role(django_user_model, MANAGER)
    _, raw = ApiToken.issue(user, "schemathesis")
    settings.MAILER_RECEIPT_TOKEN = raw
    clients = [make_client(tag="vip"), make_client(tag="new", timezone="Europe/Moscow")]
    mailing = make_mailing(filter_tags=["vip"])
    Message.objects.create(mailing=mailing, client=clients[0], status=MessageStatus.SENT, sent_at=now)
    make_mailing(start_at=now + timedelta(days=1), end_at=now + timedelta(days=2))
    yield raw
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# The default run is derandomized (the same cases every time: no flaky CI, ~20 s); a longer random
# exploration: API_FUZZ_EXAMPLES=500 pytest -m fuzz
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES") or 0)


@pytest.mark.fuzz
@schema.parametrize()
@settings(
    max_examples=EXAMPLES or 25,
    derandomize=not EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, token):
    # Not positive_data_acceptance: some schema-valid input is rightly refused by rules a schema
    # can't state (a phone already taken, end before start, an empty window, a file that isn't CSV).
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
