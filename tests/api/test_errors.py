"""The API answers JSON for everything, with the status that says what is wrong."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_method_the_messages_list_does_not_have_is_405(api, viewer_api, make_mailing, method):
    mailing = make_mailing()
    for who in (api, viewer_api):
        response = getattr(who, method)(f"/api/v1/mailings/{mailing.pk}/messages/", {}, format="json")
        assert response.status_code == 405
        assert response.json()["detail"].startswith("Method")
        assert "GET" in response["Allow"]


def test_a_method_an_object_does_not_have_is_405(api, make_client):
    client = make_client()
    assert api.post(f"/api/v1/clients/{client.pk}/", {}, format="json").status_code == 405


def test_a_missing_role_is_still_403_for_a_method_that_exists(viewer_api):
    assert viewer_api.post("/api/v1/clients/", {"phone": "79161234567"}, format="json").status_code == 403


def test_an_oversized_json_body_gets_a_json_400(api, settings):
    body = b'{"phone": "79161234567", "tag": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + b'"}'
    response = api.post("/api/v1/clients/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The request body is larger than 2560 KB."}


def test_a_dashboard_400_stays_html(admin_client, settings):
    body = b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = admin_client.post("/clients/new/", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
