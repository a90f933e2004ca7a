"""The OpenAPI document: valid, complete, and the same one /api/schema/ serves."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_spectacular_validates_without_warnings(tmp_path):
    # Raises (CommandError / SystemExit) on an invalid schema or any warning.
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(tmp_path / "schema.yml"),
        stderr=StringIO(),
    )
    assert "openapi: 3" in (tmp_path / "schema.yml").read_text()


def test_served_schema_is_the_generated_one(api, schema):
    # test_schemathesis.py runs against the generated document; it must be what clients download.
    assert api.get("/api/schema/?format=json").json() == schema


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_operation_is_described_and_authenticated(schema):
    paths = {path for path, _, _ in operations(schema)}
    assert paths == {
        "/api/v1/client-fields/",
        "/api/v1/clients/",
        "/api/v1/clients/{id}/",
        "/api/v1/clients/import/",
        "/api/v1/clients/imports/{import_id}/",
        "/api/v1/mailings/",
        "/api/v1/mailings/{id}/",
        "/api/v1/mailings/{id}/pause/",
        "/api/v1/mailings/{id}/resume/",
        "/api/v1/mailings/{id}/cancel/",
        "/api/v1/mailings/{id}/approve/",
        "/api/v1/mailings/{id}/refuse/",
        "/api/v1/mailings/{id}/stats/",
        "/api/v1/mailings/{id}/messages/",
        "/api/v1/stats/",
        "/api/v1/stop-list/",
        "/api/v1/stop-list/{phone}/",
        "/api/v1/stop-list/{phone}/remove/",
        "/api/v1/audit/",
        "/api/v1/gateway/receipts/",
    }
    for path, method, op in operations(schema):
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        if path == "/api/v1/gateway/receipts/":  # the gateway's door: its own token, no roles
            assert op["security"] == [{"receiptToken": []}] and {"400", "401", "404"} <= set(op["responses"])
            continue
        assert {"bearerAuth": []} in op["security"] and {} not in op["security"], where
        assert {"401", "403"} <= set(op["responses"]), where
        if "{id}" in path:
            assert "404" in op["responses"], where
        if method in ("post", "put", "patch") and not path.endswith(
            ("/pause/", "/resume/", "/cancel/", "/approve/")  # no body
        ):
            assert "400" in op["responses"], where
    for verb in ("pause", "resume", "cancel", "approve", "refuse"):
        assert "409" in schema["paths"][f"/api/v1/mailings/{{id}}/{verb}/"]["post"]["responses"]
    assert "409" in schema["paths"]["/api/v1/mailings/{id}/"]["put"]["responses"]


def test_auth_scheme_and_examples(schema):
    bearer = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert "api_token" in bearer["description"]
    create = schema["paths"]["/api/v1/mailings/"]["post"]
    example = next(iter(create["requestBody"]["content"]["application/json"]["examples"].values()))
    assert set(example["value"]["filter"]) == {"tags", "operator_codes"}
    assert schema["paths"]["/api/v1/clients/import/"]["post"]["requestBody"]["content"].keys() == {
        "multipart/form-data"
    }


def test_paging_parameters_are_at_least_one(schema):
    listed = 0
    for _, _, op in operations(schema):
        for parameter in op.get("parameters", []):
            if parameter["name"] in ("page", "page_size"):
                assert parameter["schema"]["minimum"] == 1
                listed += 1
    assert listed >= 6  # clients, mailings, messages: page and page_size each


def test_bodies_that_refuse_unknown_keys_say_so(schema):
    components = schema["components"]["schemas"]
    for name in (
        "ClientRequest",
        "PatchedClientRequest",
        "MailingRequest",
        "PatchedMailingRequest",
        "MailingFilterRequest",
        "MailingWindowRequest",
    ):
        assert components[name]["additionalProperties"] is False, name
    # Answers may grow new keys; only requests are closed.
    assert "additionalProperties" not in components["Client"]
