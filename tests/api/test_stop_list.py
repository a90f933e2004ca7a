"""/api/v1/stop-list/: put a phone on it, ask about it, take it off with a reason; roles apply."""

from __future__ import annotations

import pytest

from mailer.models import OptOutSource, StopEntry

pytestmark = pytest.mark.django_db


def test_put_on_ask_and_take_off(api, manager):
    created = api.post(
        "/api/v1/stop-list/", {"phone": "79161234567", "reason": "replied STOP"}, format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["phone"], body["source"], body["created_by"], body["removed_at"]) == (
        "79161234567",
        OptOutSource.API,
        manager.username,
        None,
    )
    again = api.post("/api/v1/stop-list/", {"phone": "79161234567"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert api.get("/api/v1/stop-list/79161234567/").json()["reason"] == "replied STOP"
    assert [e["phone"] for e in api.get("/api/v1/stop-list/").json()["results"]] == ["79161234567"]

    no_reason = api.post("/api/v1/stop-list/79161234567/remove/", {}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()
    removed = api.post("/api/v1/stop-list/79161234567/remove/", {"reason": "consented again"}, format="json")
    assert removed.status_code == 200
    assert (
        removed.json()["removal_reason"] == "consented again"
        and removed.json()["removed_by"] == manager.username
    )
    assert api.get("/api/v1/stop-list/79161234567/").status_code == 404
    assert api.get("/api/v1/stop-list/").json()["results"] == []
    assert len(api.get("/api/v1/stop-list/?state=removed").json()["results"]) == 1
    assert (
        api.post("/api/v1/stop-list/79161234567/remove/", {"reason": "x"}, format="json").status_code == 404
    )


@pytest.mark.parametrize("phone", ["7916", "78001234567", 79161234567, "", None])
def test_a_bad_phone_is_a_400_naming_the_field(api, phone):
    response = api.post("/api/v1/stop-list/", {"phone": phone}, format="json")
    assert response.status_code == 400 and "phone" in response.json()
    assert not StopEntry.objects.exists()


def test_viewers_read_but_do_not_change(viewer_api):
    StopEntry.opt_out("79161234567", OptOutSource.UI)
    assert viewer_api.get("/api/v1/stop-list/").status_code == 200
    assert viewer_api.post("/api/v1/stop-list/", {"phone": "79261234567"}, format="json").status_code == 403
    assert (
        viewer_api.post("/api/v1/stop-list/79161234567/remove/", {"reason": "x"}, format="json").status_code
        == 403
    )


def test_bad_query_parameters_are_400(api):
    assert api.get("/api/v1/stop-list/?state=everything").status_code == 400
    assert api.get("/api/v1/stop-list/?state=").status_code == 400
    assert api.get("/api/v1/stop-list/?phone=" + "9" * 50).status_code == 400
