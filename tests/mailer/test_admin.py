from __future__ import annotations

import pytest

from mailer.models import GatewayState

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "model", ["client", "mailing", "message", "gatewaystate", "workerheartbeat", "report"]
)
def test_admin_lists_open(admin_client, model, make_client, make_mailing):
    make_client(tag="vip")
    make_mailing()
    assert admin_client.get(f"/admin/mailer/{model}/").status_code == 200


def test_operator_clears_a_refused_token(admin_client):
    GatewayState.objects.create(
        pk=1, auth_error="auth: HTTP 401", auth_failed_token="abc", consecutive_failures=7
    )
    response = admin_client.post(
        "/admin/mailer/gatewaystate/", {"action": "clear_problems", "_selected_action": ["1"]}, follow=True
    )
    assert b"Cleared" in response.content
    state = GatewayState.get()
    assert (state.auth_error, state.auth_failed_token, state.consecutive_failures) == ("", "", 0)
