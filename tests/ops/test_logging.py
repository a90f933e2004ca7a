from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.logging import ContextFilter, JsonFormatter, TextFormatter, ids_from_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines():
    """What the configured handler would write with LOG_FORMAT=json: the same filter and formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.mark.parametrize("field", ["mailing_id", "message_id", "client_id"])
def test_json_line_carries_each_id_kind(json_lines, field):
    logging.getLogger("mailer.sending").warning("gateway said 500", extra={field: 42})
    [line] = json_lines()
    assert line[field] == 42
    assert line["message"] == "gateway said 500"
    assert line["level"] == "WARNING" and line["logger"] == "mailer.sending"
    assert line["time"].endswith("+00:00")


def test_json_line_keeps_the_traceback(json_lines):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("mailer").exception("failed", extra={"mailing_id": 7})
    [line] = json_lines()
    assert line["mailing_id"] == 7
    assert "ValueError: boom" in line["exc_info"]


def test_text_format_appends_ids_not_already_in_the_text():
    formatter = TextFormatter("%(levelname)s %(message)s")
    record = logging.makeLogRecord({"msg": "sent", "levelname": "INFO", "mailing_id": 3, "message_id": 9})
    assert formatter.format(record) == "INFO sent mailing_id=3 message_id=9"
    # The engine also writes the ids into the text: they are not repeated.
    record = logging.makeLogRecord(
        {"msg": "sent mailing_id=3 message_id=9", "levelname": "INFO", "mailing_id": 3, "message_id": 9}
    )
    assert formatter.format(record) == "INFO sent mailing_id=3 message_id=9"


@pytest.mark.urls("tests.ops.urls")
@pytest.mark.parametrize(
    ("path", "ids"),
    [
        ("/mailings/5/", {"mailing_id": 5, "view": "mailing-detail"}),
        ("/messages/6/", {"message_id": 6, "view": "message-detail"}),
        ("/clients/7/messages/", {"client_id": 7, "view": "client-messages"}),
    ],
)
def test_request_lines_carry_the_request_id_and_the_ids_in_the_url(admin_client, json_lines, path, ids):
    # Signed in: every page but the probes needs a login.
    response = admin_client.get(path, HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-ID"] == "req-123"
    view_line, access_line = json_lines()
    assert view_line["message"] == "looked at it"
    assert view_line["request_id"] == "req-123"
    assert ids.items() <= view_line.items()
    # One access line per request, with the same ids.
    assert access_line["logger"] == "mailer.http"
    assert access_line["message"] == f"GET {path} 200"
    assert access_line["status"] == 200 and access_line["method"] == "GET"
    assert ids.items() <= access_line.items() and access_line["request_id"] == "req-123"


@pytest.mark.urls("tests.ops.urls")
@pytest.mark.parametrize("given", [None, "", "has spaces", "x" * 65, "inject\nline"])
def test_a_request_without_a_usable_id_gets_a_new_one(client, json_lines, given):
    headers = {} if given is None else {"HTTP_X_REQUEST_ID": given}
    first = client.get("/mailings/1/", **headers)["X-Request-ID"]
    second = client.get("/mailings/1/", **headers)["X-Request-ID"]
    assert re.fullmatch("[0-9a-f]{32}", first)
    assert first != second
    assert {line["request_id"] for line in json_lines()} == {first, second}


@pytest.mark.urls("tests.ops.urls")
def test_context_ends_with_the_request(client, json_lines):
    client.get("/mailings/5/")
    logging.getLogger("mailer").info("after the request")
    line = json_lines()[-1]
    assert "request_id" not in line and "mailing_id" not in line


def test_ids_from_url_convention():
    assert ids_from_url("api:mailing-detail", {"pk": 3}) == {"mailing_id": 3}
    assert ids_from_url("dashboard:client-edit", {"pk": 4}) == {"client_id": 4}
    assert ids_from_url("mailing-messages", {"mailing_pk": 1, "pk": 2}) == {"mailing_id": 1}
    assert ids_from_url("message-detail", {"message_id": 8}) == {"message_id": 8}
    assert ids_from_url("home", {"pk": 5}) == {}


@pytest.mark.parametrize(("fmt", "is_json"), [("json", True), ("text", False)])
def test_log_format_setting_picks_the_formatter(fmt, is_json):
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('mailer.sending').info('sent', extra={'mailing_id': 5, 'client_id': 6})"
    )
    env = {**os.environ, "LOG_FORMAT": fmt, "DJANGO_SETTINGS_MODULE": "mailer.settings", "SECRET_KEY": "x"}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    line = run.stderr.strip().splitlines()[-1]
    if is_json:
        entry = json.loads(line)
        assert (entry["message"], entry["mailing_id"], entry["client_id"]) == ("sent", 5, 6)
    else:
        assert line.endswith("INFO mailer.sending sent mailing_id=5 client_id=6")


def test_bad_log_format_stops_the_start():
    env = {**os.environ, "LOG_FORMAT": "xml", "DJANGO_SETTINGS_MODULE": "mailer.settings", "SECRET_KEY": "x"}
    code = "import django; django.setup()"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode != 0
    assert "LOG_FORMAT must be text or json, not 'xml'" in run.stderr


@pytest.mark.urls("tests.ops.urls")
def test_django_request_error_lines_carry_the_request_context(client, json_lines, db):
    # Django logs a 4xx/5xx after the middleware chain has finished: the ids come from the request.
    client.get("/readyz", HTTP_X_REQUEST_ID="probe-9")  # 503: no worker heartbeat
    [error] = [line for line in json_lines() if line["logger"] == "django.request"]
    assert error["request_id"] == "probe-9" and error["view"] == "readyz"
    assert error["status_code"] == 503 and "request" not in error
