"""/api/v1/clients/: list with filters, create, retrieve, update, delete, and their errors."""

from __future__ import annotations

import logging

import pytest

from mailer.models import Client


def test_create_derives_operator_code(api, caplog):
    with caplog.at_level(logging.INFO, logger="mailer.api"):
        response = api.post(
            "/api/v1/clients/",
            {"phone": "79161234567", "tag": "vip", "timezone": "Europe/Moscow", "operator_code": "999"},
            format="json",
        )
    assert response.status_code == 201
    body = response.json()
    assert body["operator_code"] == "916"  # read-only: the one sent is ignored
    client = Client.objects.get(pk=body["id"])
    assert (client.phone, client.tag, client.timezone) == ("79161234567", "vip", "Europe/Moscow")
    assert f"client_id={client.id} created" in caplog.text
    assert [r.client_id for r in caplog.records if hasattr(r, "client_id")] == [client.id]


def test_timezone_defaults_to_utc(api):
    assert (
        api.post("/api/v1/clients/", {"phone": "79161234567"}, format="json").json()["timezone"]
        == "Europe/Moscow"
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"phone": "7916123456"}, "phone", "11 digits"),
        ({"phone": "+89161234567"}, "phone", "11 digits"),  # 8 is the trunk prefix, +8 is nothing
        ({"phone": "7916123456x"}, "phone", "11 digits"),
        ({"phone": "7\u0669\u0661\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667"}, "phone", "11 digits"),
        ({"phone": "78161234567"}, "phone", "Operator code 816"),
        ({"phone": 79161234567}, "phone", "valid string"),
        ({}, "phone", "required"),
        ({"phone": "79161234567", "timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"phone": "79161234567", "timezone": None}, "timezone", "null"),
        ({"phone": "79161234567", "tag": "x" * 65}, "tag", "64"),
        ({"phone": "79161234567", "tag": "a\x00b"}, "tag", "Null"),
        ({"phone": "79161234567", "tag": ["vip"]}, "tag", "valid string"),
    ],
)
def test_create_refuses_bad_input_naming_the_field(api, body, field, message):
    response = api.post("/api/v1/clients/", body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert message in " ".join(errors[field])
    assert not Client.objects.exists()


def test_duplicate_phone_is_refused(api, make_client):
    make_client("79161234567")
    response = api.post("/api/v1/clients/", {"phone": "79161234567"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"phone": ["A client with this phone already exists."]}


@pytest.mark.parametrize(
    "body",
    [
        "{bad json",
        "[]",
        '"a string"',
        "1e999999",
        "null",
        "[" * 100_000 + "]" * 100_000,  # deeper than Python's recursion limit
        b'{"phone": "\xff"}',  # not UTF-8
        '{"phone": "\\ud800"}',  # a lone surrogate
    ],
)
def test_malformed_or_wrong_json_is_a_400(api, body):
    response = api.generic("POST", "/api/v1/clients/", body, content_type="application/json")
    assert response.status_code == 400
    assert not Client.objects.exists()


def test_form_encoded_body_is_a_415(api):
    response = api.post("/api/v1/clients/", {"phone": "79161234567"})  # multipart
    assert response.status_code == 415


def test_retrieve_and_404(api, make_client):
    client = make_client(tag="vip")
    assert api.get(f"/api/v1/clients/{client.id}/").json()["tag"] == "vip"
    for url in [f"/api/v1/clients/{client.id + 1}/", "/api/v1/clients/abc/", f"/api/v1/clients/{10**30}/"]:
        response = api.get(url)
        assert response.status_code == 404, url
        assert "detail" in response.json()


def test_address_without_slash_gets_a_json_404_that_says_so(api):
    response = api.get("/api/v1/clients")
    assert response.status_code == 404
    assert response.json()["detail"].endswith("/api/v1/clients/")


def test_put_replaces_and_patch_changes_some(api, make_client, caplog):
    client = make_client("79161234567", tag="old", timezone="Asia/Tokyo")
    response = api.put(f"/api/v1/clients/{client.id}/", {"phone": "79261234567", "tag": "new"}, format="json")
    assert response.status_code == 200
    client.refresh_from_db()
    assert (client.phone, client.operator_code, client.tag, client.timezone) == (
        "79261234567",
        "926",
        "new",
        "Europe/Moscow",  # left out of a PUT: MAILER_DEFAULT_CLIENT_TIMEZONE
    )

    with caplog.at_level(logging.INFO, logger="mailer.api"):
        response = api.patch(f"/api/v1/clients/{client.id}/", {"timezone": "Asia/Tokyo"}, format="json")
    assert response.status_code == 200
    client.refresh_from_db()
    assert (client.phone, client.tag, client.timezone) == ("79261234567", "new", "Asia/Tokyo")
    assert f"client_id={client.id} updated" in caplog.text


def test_update_keeping_own_phone_is_not_a_duplicate(api, make_client):
    client = make_client("79161234567")
    assert (
        api.patch(f"/api/v1/clients/{client.id}/", {"phone": "79161234567"}, format="json").status_code == 200
    )


def test_update_to_another_clients_phone_is_refused(api, make_client):
    make_client("79161234567")
    other = make_client("79261234567")
    response = api.patch(f"/api/v1/clients/{other.id}/", {"phone": "79161234567"}, format="json")
    assert response.status_code == 400
    assert "phone" in response.json()


def test_delete(api, make_client, caplog):
    client = make_client()
    with caplog.at_level(logging.INFO, logger="mailer.api"):
        assert api.delete(f"/api/v1/clients/{client.id}/").status_code == 204
    assert not Client.objects.exists()
    assert f"client_id={client.id} deleted" in caplog.text
    assert api.delete(f"/api/v1/clients/{client.id}/").status_code == 404


@pytest.fixture
def three(make_client):
    return [
        make_client("79161111111", tag="vip", timezone="Europe/Moscow"),
        make_client("79262222222", tag="vip", timezone="UTC"),
        make_client("79163333333", tag="new", timezone="UTC"),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [0, 1, 2]),
        ("tag=vip", [0, 1]),
        ("operator_code=916", [0, 2]),
        ("timezone=UTC", [1, 2]),
        ("phone=2222", [1]),
        ("tag=vip&operator_code=916", [0]),
        ("tag=none", []),
    ],
)
def test_list_filters(api, three, query, expected):
    body = api.get(f"/api/v1/clients/?{query}").json()
    assert [c["id"] for c in body["results"]] == [three[i].id for i in expected]
    assert body["count"] == len(expected)


def test_list_is_paginated(api, make_client):
    for _ in range(7):
        make_client()
    body = api.get("/api/v1/clients/?page_size=3&page=3").json()
    assert body["count"] == 7 and len(body["results"]) == 1 and body["next"] is None
    assert len(api.get("/api/v1/clients/").json()["results"]) == 7  # default page: 50


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("page=0", 400),
        ("page=99", 404),
        ("page=abc", 400),
        ("page=", 400),
        ("page_size=0", 400),
        (f"page_size={'9' * 5000}", 400),
    ],
)
def test_bad_pages(api, make_client, query, status):
    make_client()
    assert api.get(f"/api/v1/clients/?{query}").status_code == status


def test_nul_in_a_filter_is_a_400(api):
    assert api.get("/api/v1/clients/?tag=a%00b").status_code == 400


def test_browsable_api_for_a_logged_in_browser(client, viewer, make_client):
    make_client(tag="vip")
    client.force_login(viewer)
    response = client.get("/api/v1/clients/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert "vip" in response.content.decode()
