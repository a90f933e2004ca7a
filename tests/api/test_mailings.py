"""/api/v1/mailings/: CRUD with filter and window, editing rules, control actions, messages."""

from __future__ import annotations

import logging
from datetime import time, timedelta

import pytest

from mailer.models import Mailing, MailingState, Message, MessageStatus


@pytest.fixture
def body(now):
    return {
        "text": "Sale tonight",
        "start_at": (now + timedelta(hours=1)).isoformat(),
        "end_at": (now + timedelta(hours=5)).isoformat(),
        "filter": {"tags": ["vip", "new"], "operator_codes": ["926", "916"]},
        "window": {"start": "22:00", "end": "06:30"},
    }


def test_create_maps_filter_and_window(api, manager, body, caplog):
    with caplog.at_level(logging.INFO, logger="mailer.api"):
        response = api.post("/api/v1/mailings/", body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    mailing = Mailing.objects.get(pk=data["id"])
    assert mailing.filter_tags == ["new", "vip"]
    assert mailing.filter_operator_codes == ["916", "926"]
    assert (mailing.window_start, mailing.window_end) == (time(22, 0), time(6, 30))
    assert mailing.created_by == manager and data["created_by"] == "manager"
    assert mailing.state == MailingState.SCHEDULED
    assert data["filter"] == {"tags": ["new", "vip"], "operator_codes": ["916", "926"]}
    assert data["window"] == {"start": "22:00", "end": "06:30"}
    assert f"mailing_id={mailing.id} created" in caplog.text
    assert [r.mailing_id for r in caplog.records if hasattr(r, "mailing_id")] == [mailing.id]


def test_filter_and_window_are_optional(api, body):
    del body["filter"], body["window"]
    data = api.post("/api/v1/mailings/", body, format="json").json()
    assert data["filter"] == {"tags": [], "operator_codes": []} and data["window"] is None


def test_state_and_created_by_are_read_only(api, body):
    body |= {"state": "finished", "created_by": "someone"}
    data = api.post("/api/v1/mailings/", body, format="json").json()
    assert data["state"] == "scheduled" and data["created_by"] == "manager"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"filter": {"tags": ["vip"], "tag": ["x"]}},
            {"filter": {"tag": ["Unknown key 'tag'; allowed: tags, operator_codes."]}},
        ),
        (
            {"window": {"start": "09:00", "end": "10:00", "tz": "UTC"}},
            {"window": {"tz": ["Unknown key 'tz'; allowed: start, end."]}},
        ),
        ({"window": {"start": "09:00"}}, {"window": {"end": ["This field is required."]}}),
        ({"window": {"start": "09:00", "end": "09:00"}}, {"window": ["The window must not be empty."]}),
        ({"window": {"start": "9am", "end": "10:00"}}, None),
        ({"window": {"start": "25:00", "end": "10:00"}}, None),
        ({"window": "09:00-10:00"}, None),
        ({"filter": {"operator_codes": ["800"]}}, None),
        ({"filter": {"operator_codes": [916]}}, None),
        ({"filter": {"tags": "vip"}}, None),
        ({"filter": {"tags": [""]}}, None),
        ({"filter": None}, None),
        ({"text": ""}, None),
        ({"text": "   "}, {"text": ["This field may not be blank."]}),
        ({"text": "x" * 1001}, None),
        ({"start_at": "tomorrow"}, None),
        ({"start_at": "9999-12-31T23:59:59-12:00"}, None),
        ({"start_at": 12345}, None),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, body, change, expected):
    body |= change
    response = api.post("/api/v1/mailings/", body, format="json")
    assert response.status_code == 400, response.json()
    errors = response.json()
    assert set(errors) == set(change)
    if expected is not None:
        assert errors == expected
    assert not Mailing.objects.exists()


def test_unknown_top_level_key_is_a_400(api, body):
    # "filters" for "filter" must not quietly mean "everyone".
    body["filters"] = body.pop("filter")
    response = api.post("/api/v1/mailings/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["filters"]
    assert "Unknown key 'filters'" in response.json()["filters"][0]


def test_end_before_start_is_a_400(api, body, now):
    body["end_at"] = (now - timedelta(hours=1)).isoformat()
    response = api.post("/api/v1/mailings/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"end_at": ["End must be after start."]}


def test_patch_filter_replaces_the_whole_filter(api, make_mailing, caplog):
    mailing = make_mailing(filter_tags=["vip"], filter_operator_codes=["916"])
    with caplog.at_level(logging.INFO, logger="mailer.api"):
        response = api.patch(f"/api/v1/mailings/{mailing.id}/", {"filter": {"tags": ["new"]}}, format="json")
    assert response.status_code == 200
    mailing.refresh_from_db()
    assert (mailing.filter_tags, mailing.filter_operator_codes) == (["new"], [])
    assert f"mailing_id={mailing.id} updated" in caplog.text


def test_patch_half_a_window_is_a_400(api, make_mailing):
    mailing = make_mailing()
    response = api.patch(f"/api/v1/mailings/{mailing.id}/", {"window": {"end": "10:00"}}, format="json")
    assert response.status_code == 400
    assert "window" in response.json()


def test_patch_window_null_removes_it(api, make_mailing):
    mailing = make_mailing(window_start=time(9), window_end=time(18))
    assert (
        api.patch(f"/api/v1/mailings/{mailing.id}/", {"window": None}, format="json").json()["window"] is None
    )
    mailing.refresh_from_db()
    assert mailing.window_start is None and mailing.window_end is None


def test_patch_end_before_existing_start_is_a_400(api, make_mailing, now):
    mailing = make_mailing()
    response = api.patch(
        f"/api/v1/mailings/{mailing.id}/", {"end_at": (now - timedelta(days=1)).isoformat()}, format="json"
    )
    assert response.status_code == 400 and "end_at" in response.json()


def test_put_replaces(api, make_mailing, body):
    mailing = make_mailing(filter_tags=["old"])
    response = api.put(f"/api/v1/mailings/{mailing.id}/", body, format="json")
    assert response.status_code == 200
    mailing.refresh_from_db()
    assert mailing.text == "Sale tonight" and mailing.filter_tags == ["new", "vip"]


def test_update_does_not_overwrite_the_state_set_meanwhile(api, make_mailing):
    # The API writes only the fields it edits: the engine may have moved the state on.
    mailing = make_mailing()
    Mailing.objects.filter(pk=mailing.pk).update(state=MailingState.RUNNING)
    api.patch(f"/api/v1/mailings/{mailing.id}/", {"text": "New text"}, format="json")
    mailing.refresh_from_db()
    assert (mailing.text, mailing.state) == ("New text", MailingState.RUNNING)


@pytest.mark.parametrize("state", [MailingState.FINISHED, MailingState.CANCELLED])
@pytest.mark.parametrize("method", ["put", "patch"])
def test_editing_finished_or_cancelled_is_a_409(api, make_mailing, body, state, method):
    mailing = make_mailing(state=state, text="Old")
    response = getattr(api, method)(f"/api/v1/mailings/{mailing.id}/", body, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": f"A {state} mailing can't be edited."}
    mailing.refresh_from_db()
    assert mailing.text == "Old"


def test_delete(api, make_mailing, make_client, caplog):
    mailing = make_mailing()
    Message.objects.create(mailing=mailing, client=make_client())
    with caplog.at_level(logging.INFO, logger="mailer.api"):
        assert api.delete(f"/api/v1/mailings/{mailing.id}/").status_code == 204
    assert not Mailing.objects.exists() and not Message.objects.exists()
    assert f"mailing_id={mailing.id} deleted" in caplog.text


def test_list_filters_by_state_and_start_date(api, make_mailing, now):
    a = make_mailing(
        start_at=now - timedelta(days=10), end_at=now - timedelta(days=9), state=MailingState.FINISHED
    )
    b = make_mailing(start_at=now + timedelta(days=10), end_at=now + timedelta(days=11))
    c = make_mailing(start_at=now + timedelta(days=20), end_at=now + timedelta(days=21))

    def ids(query: str) -> list[int]:
        response = api.get(f"/api/v1/mailings/?{query}")
        assert response.status_code == 200, response.json()
        return [m["id"] for m in response.json()["results"]]

    assert ids("") == [c.id, b.id, a.id]  # newest start first
    assert ids("state=finished") == [a.id]
    assert ids("state=scheduled") == [c.id, b.id]

    def day(d):
        return (now + timedelta(days=d)).date().isoformat()

    assert ids(f"start_after={day(0)}") == [c.id, b.id]
    assert ids(f"start_before={day(10)}") == [b.id, a.id]
    assert ids(f"start_after={day(5)}&start_before={day(15)}") == [b.id]


@pytest.mark.parametrize(
    "query", ["state=done", "state=", "start_after=yesterday", "start_before=2026-02-30"]
)
def test_list_bad_filters_are_a_400(api, query):
    response = api.get(f"/api/v1/mailings/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


# Control


@pytest.mark.parametrize(
    ("verb", "before", "after"),
    [
        ("pause", MailingState.SCHEDULED, MailingState.PAUSED),
        ("pause", MailingState.RUNNING, MailingState.PAUSED),
        ("resume", MailingState.PAUSED, MailingState.SCHEDULED),
        ("cancel", MailingState.RUNNING, MailingState.CANCELLED),
        ("cancel", MailingState.PAUSED, MailingState.CANCELLED),
    ],
)
def test_control(api, make_mailing, verb, before, after, caplog):
    mailing = make_mailing(state=before)
    with caplog.at_level(logging.INFO, logger="mailer.api"):
        response = api.post(f"/api/v1/mailings/{mailing.id}/{verb}/")
    assert response.status_code == 200
    assert response.json()["state"] == after
    mailing.refresh_from_db()
    assert mailing.state == after
    assert f"mailing_id={mailing.id} {verb}" in caplog.text


@pytest.mark.parametrize(
    ("verb", "state"),
    [
        ("pause", MailingState.PAUSED),
        ("pause", MailingState.FINISHED),
        ("resume", MailingState.RUNNING),
        ("resume", MailingState.CANCELLED),
        ("cancel", MailingState.FINISHED),
        ("cancel", MailingState.CANCELLED),
    ],
)
def test_control_from_a_wrong_state_is_a_409(api, make_mailing, verb, state):
    mailing = make_mailing(state=state)
    response = api.post(f"/api/v1/mailings/{mailing.id}/{verb}/")
    assert response.status_code == 409
    assert response.json() == {"detail": f"A {state} mailing can't be changed that way."}
    mailing.refresh_from_db()
    assert mailing.state == state


def test_cancel_cancels_pending_messages(api, make_mailing, make_client):
    mailing = make_mailing(state=MailingState.RUNNING)
    pending = Message.objects.create(mailing=mailing, client=make_client())
    sent = Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.SENT)
    api.post(f"/api/v1/mailings/{mailing.id}/cancel/")
    pending.refresh_from_db()
    sent.refresh_from_db()
    assert (pending.status, sent.status) == (MessageStatus.CANCELLED, MessageStatus.SENT)


def test_control_of_missing_mailing_is_a_404_and_get_is_a_405(api, make_mailing):
    assert api.post("/api/v1/mailings/999/pause/").status_code == 404
    mailing = make_mailing()
    assert api.get(f"/api/v1/mailings/{mailing.id}/pause/").status_code == 405


# Messages


def test_messages_paginated_and_filtered(api, make_mailing, make_client, now):
    mailing = make_mailing()
    other = make_mailing()
    clients = [make_client() for _ in range(3)]
    sent = Message.objects.create(
        mailing=mailing, client=clients[0], status=MessageStatus.SENT, sent_at=now, attempts=1
    )
    failed = Message.objects.create(
        mailing=mailing, client=clients[1], status=MessageStatus.FAILED, attempts=3, last_error="HTTP 500"
    )
    orphan = Message.objects.create(mailing=mailing, client=clients[2])
    clients[2].delete()
    Message.objects.create(mailing=other, client=clients[0])

    body = api.get(f"/api/v1/mailings/{mailing.id}/messages/").json()
    assert body["count"] == 3
    first, second, third = body["results"]
    assert first == {
        "id": sent.id,
        "client": {"id": clients[0].id, "phone": clients[0].phone},
        "status": "sent",
        "attempts": 1,
        "last_error": "",
        "created_at": first["created_at"],
        "sent_at": now.isoformat().replace("+00:00", "Z"),
        "text": None,  # made here, not by the engine: no text recorded
        "delivery_status": None,  # no receipt yet
        "delivered_at": None,
        "delivery_error": "",
    }
    assert (second["id"], second["attempts"], second["last_error"]) == (failed.id, 3, "HTTP 500")
    assert (third["id"], third["client"]) == (orphan.id, None)

    body = api.get(f"/api/v1/mailings/{mailing.id}/messages/?status=failed").json()
    assert [m["id"] for m in body["results"]] == [failed.id]
    assert len(api.get(f"/api/v1/mailings/{mailing.id}/messages/?page_size=2").json()["results"]) == 2
    assert api.get(f"/api/v1/mailings/{mailing.id}/messages/?status=lost").status_code == 400
    assert api.get("/api/v1/mailings/999/messages/").status_code == 404


def test_the_text_s_length_as_sms_and_the_cap(api, body, settings):
    body["text"] = "П" * 71
    data = api.post("/api/v1/mailings/", body, format="json").json()
    assert data["sms"] == {"encoding": "UCS-2", "characters": 71, "parts": 2}
    settings.MAILER_MAX_PARTS = 1
    response = api.post("/api/v1/mailings/", body, format="json")
    assert response.status_code == 400
    assert "takes 2 SMS parts" in response.json()["text"][0]


def test_stats_count_the_sms_sent(api, make_mailing, make_client):
    mailing = make_mailing(text="П" * 71)
    for _ in range(3):
        Message.objects.create(
            mailing=mailing, client=make_client(), status=MessageStatus.SENT, sent_text=mailing.current_text
        )
    one = api.get(f"/api/v1/mailings/{mailing.pk}/stats/").json()
    assert (one["sms_parts"], one["sms_sent"]) == (2, 6)
    everything = api.get("/api/v1/stats/").json()
    assert everything["sms_sent"] == 6 and everything["mailings"][0]["sms_sent"] == 6
