"""Client import from CSV: mailer.importing (shared with the dashboard) and POST /api/v1/clients/import/."""

from __future__ import annotations

import io
import random
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mailer.importing import RowError, _PhoneRows, import_clients, run_import, start_import
from mailer.models import Client, ClientImport


def csv_of(*rows: str, header: str = "phone,tag,timezone") -> str:
    return "\n".join([header, *rows]) + "\n"


def test_creates_clients(db):
    report = import_clients(csv_of("79161234567,vip,Europe/Moscow", "79261234567,,"), all_or_nothing=True)
    assert (report.created, report.updated, report.errors, report.written) == (2, 0, [], True)
    a, b = Client.objects.order_by("phone")
    assert (a.phone, a.operator_code, a.tag, a.timezone) == ("79161234567", "916", "vip", "Europe/Moscow")
    # An empty timezone: MAILER_DEFAULT_CLIENT_TIMEZONE.
    assert (b.operator_code, b.tag, b.timezone) == ("926", "", "Europe/Moscow")


def test_columns_in_any_order_and_optional(db):
    import_clients(csv_of("Europe/Moscow,79161234567", header="timezone,phone"), all_or_nothing=True)
    client = Client.objects.get()
    assert (client.phone, client.tag, client.timezone) == ("79161234567", "", "Europe/Moscow")


def test_unnamed_columns_are_ignored(db):
    # Spreadsheets export trailing commas.
    report = import_clients("phone,tag,\n79161234567,vip,\n79261234567,vip,x\n", all_or_nothing=True)
    assert (report.created, report.errors) == (2, [])


def test_accepts_bytes_file_and_bom(db):
    data = ("\ufeff" + csv_of("79161234567,vip,UTC")).encode()
    assert import_clients(io.BytesIO(data), all_or_nothing=True).created == 1
    assert import_clients(io.StringIO(csv_of("79261234567,vip,UTC")), all_or_nothing=True).created == 1


def test_per_row_errors_with_row_numbers(db):
    text = csv_of(
        "79161234567,vip,UTC",  # row 2
        "7916123456,vip,UTC",  # 3: short phone
        "78161234567,vip,UTC",  # 4: operator code
        "79161234567,new,UTC",  # 5: duplicate of row 2
        "79261234567,vip,Mars/Base",  # 6: timezone
        "79361234567," + "x" * 65 + ",UTC",  # 7: tag too long
        "79461234567,vip,UTC,extra",  # 8: too many values
        "",  # 9: blank, skipped
        "79561234567",  # 10: short row, fine
    )
    report = import_clients(text, all_or_nothing=False)
    assert [(e.row, e.field) for e in report.errors] == [
        (3, "phone"),
        (4, "phone"),
        (5, "phone"),
        (6, "timezone"),
        (7, "tag"),
        (8, ""),
    ]
    messages = {e.row: e.message for e in report.errors}
    assert "Duplicate of row 2" in messages[5]
    assert "Operator code 816" in messages[4]
    assert "Mars/Base" in messages[6]
    assert (report.created, report.written) == (2, True)
    assert set(Client.objects.values_list("phone", flat=True)) == {"79161234567", "79561234567"}


def test_all_or_nothing_writes_nothing_on_error(db, make_client):
    make_client("79161234567", tag="old")
    text = csv_of("79161234567,new,UTC", "79261234567,vip,UTC", "bad,vip,UTC")
    report = import_clients(text, all_or_nothing=True)
    message = "Phone must be 11 digits starting with 7: 7XXXXXXXXXX."
    assert report.errors == [RowError(4, "phone", message, phone="bad")]
    assert (report.created, report.updated, report.written) == (0, 0, False)
    assert list(Client.objects.values_list("phone", "tag")) == [("79161234567", "old")]


def test_known_phone_is_updated_and_unchanged_counted(db, make_client):
    make_client("79161234567", tag="old", timezone="UTC")
    make_client("79261234567", tag="same", timezone="UTC")
    report = import_clients(csv_of("79161234567,new,Asia/Tokyo", "79261234567,same,UTC"), all_or_nothing=True)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    client = Client.objects.get(phone="79161234567")
    assert (client.tag, client.timezone) == ("new", "Asia/Tokyo")


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("", "", "empty"),
        ("phone,tag,colour\n79161234567,a,red\n", "colour", "Unknown column"),
        ("tag,timezone\nvip,UTC\n", "phone", "phone column"),
        ("phone,phone\n79161234567,79161234567\n", "", "twice"),
    ],
)
def test_bad_header_writes_nothing(db, text, field, message):
    report = import_clients(text, all_or_nothing=False)
    assert report.errors[0].row == 1 and report.errors[0].field == field
    assert message in report.errors[0].message
    assert not report.written and not Client.objects.exists()


def test_a_file_that_is_not_utf8_is_read_as_windows_1251(db):
    report = import_clients("phone,tag\n79161234567,Москва\n".encode("cp1251"), all_or_nothing=False)
    assert (report.created, report.errors) == (1, [])
    assert Client.objects.get().tag == "Москва"
    assert ClientImport.objects.get().encoding == "cp1251"


def test_a_row_not_in_the_encoding_found_at_the_start_is_an_error_of_its_row(db, monkeypatch):
    """The encoding is found from the first piece: a later row in another one can't be read."""
    monkeypatch.setattr("mailer.importing.PIECE_BYTES", 32)
    start = csv_of("79161234567,vip,UTC", "79261234567,vip,UTC").encode()
    text = start + "79361234567,Москва,\n".encode("cp1251")
    report = import_clients(text, all_or_nothing=False)
    assert [(e.row, e.phone) for e in report.errors] == [(4, "79361234567")]
    assert "not UTF-8 text" in report.errors[0].message
    assert report.created == 2


def test_control_characters_in_tag_are_refused(db):
    report = import_clients(csv_of("79161234567,a\x00b,UTC"), all_or_nothing=False)
    assert [(e.row, e.field) for e in report.errors] == [(2, "tag")]


def test_many_rows_fast_and_without_per_row_queries(db, make_client):
    # The 100,000-row figure is in docs/benchmarks.md (bench/import_clients.py).
    n = 5000
    make_client("79000000000", tag="old")
    text = csv_of(*(f"79{i:09d},t{i % 5},UTC" for i in range(n)))
    start = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        report = import_clients(text, all_or_nothing=True)
    elapsed = time.perf_counter() - start
    assert (report.created, report.updated, report.errors) == (n - 1, 1, [])
    assert Client.objects.count() == n
    # Batches, not rows (SQLite inserts 999 parameters a query: ~66 rows of a client's 15 fields).
    assert len(queries) < n / 40, len(queries)
    assert elapsed < 10


# The endpoint


def upload(api, text: str | bytes, **fields):
    """POST the file; once accepted, run the import as a worker would and GET where it points."""
    data = text.encode() if isinstance(text, str) else text
    response = api.post(
        "/api/v1/clients/import/",
        {"file": SimpleUploadedFile("clients.csv", data, content_type="text/csv"), **fields},
        format="multipart",
    )
    if response.status_code != 202:
        return response
    assert response.json()["state"] == "queued"
    run_import(response.json()["id"])
    return api.get(response["Location"])


def test_endpoint_imports(api, caplog):
    response = upload(api, csv_of("79161234567,vip,UTC", "79261234567,vip,UTC"))
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["percent"], body["url"]) == (
        "done",
        100,
        f"/api/v1/clients/imports/{body['id']}/",
    )
    assert {k: body[k] for k in ("written", "created", "updated", "unchanged", "error_count", "errors")} == {
        "written": True,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "error_count": 0,
        "errors": [],
    }
    assert Client.objects.count() == 2
    assert f"import_id={body['id']} of 59 bytes started" in caplog.text


def test_endpoint_all_or_nothing_by_default(api):
    response = upload(api, csv_of("79161234567,vip,UTC", "79161234567,vip,UTC"))
    body = response.json()
    assert body["state"] == "failed"
    assert body["written"] is False and body["error_count"] == 1
    assert body["errors"] == [
        {"row": 3, "phone": "79161234567", "field": "phone", "message": "Duplicate of row 2."}
    ]
    assert not Client.objects.exists()


def test_endpoint_valid_rows_only(api):
    response = upload(api, csv_of("79161234567,vip,UTC", "nope,vip,UTC"), all_or_nothing="false")
    assert response.status_code == 200
    body = response.json()
    assert (body["written"], body["created"], body["error_count"]) == (True, 1, 1)
    assert body["errors"][0]["row"] == 3
    assert Client.objects.count() == 1


def test_endpoint_caps_the_error_list(api):
    response = upload(api, csv_of(*(f"bad{i},,UTC" for i in range(1500))))
    body = response.json()
    assert body["error_count"] == 1500 and len(body["errors"]) == 1000


def test_endpoint_without_file_is_a_400(api):
    response = api.post("/api/v1/clients/import/", {"all_or_nothing": "maybe"}, format="multipart")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"file", "all_or_nothing"}


def test_endpoint_binary_garbage_is_a_400(api):
    response = upload(api, b"\x89PNG\r\n\x1a\n\x00\x00")
    assert response.status_code == 400
    message = "The file is neither CSV text nor an Excel workbook (.xlsx)."
    assert response.json()["errors"] == [{"row": 0, "phone": "", "field": "file", "message": message}]
    response = upload(api, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100))
    assert "old Excel workbook (.xls)" in response.json()["errors"][0]["message"]
    assert not ClientImport.objects.exists()


def test_endpoint_refuses_a_too_large_file(api, monkeypatch):
    monkeypatch.setattr("mailer.importing.max_bytes", lambda: 100)
    response = upload(api, csv_of(*(f"7916{i:07d},,UTC" for i in range(10))))
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "row": 0,
        "phone": "",
        "field": "file",
        "message": "The file is larger than 50 MB; split it.",
    }
    assert not Client.objects.exists() and not ClientImport.objects.exists()


def test_endpoint_status_needs_the_import_permission(viewer_api, api):
    response = upload(api, csv_of("79161234567,vip,UTC"))
    assert viewer_api.get(response.json()["url"]).status_code == 403
    assert api.get("/api/v1/clients/imports/999999/").status_code == 404


# Caps: what one upload may cost (issue 21). Tiny caps show the rule with tiny files.


def test_a_header_over_the_column_cap_is_refused_naming_it(api, settings):
    settings.MAILER_IMPORT_MAX_COLUMNS = 4
    response = upload(api, csv_of("79161234567,vip,UTC,no,", header="phone,tag,timezone,opted_out,"))
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "row": 0,
            "phone": "",
            "field": "file",
            "message": "The header has 5 columns, more than the limit of 4.",
        }
    ]
    assert not ClientImport.objects.exists()


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("piece", [7, 2**20])  # lines split across the stored pieces, or not
def test_a_line_over_the_cap_is_refused_naming_it_and_its_line(api, settings, monkeypatch, newline, piece):
    settings.MAILER_IMPORT_MAX_LINE = 20
    monkeypatch.setattr("mailer.importing.PIECE_BYTES", piece)
    text = newline.join(["phone,tag", "79161234567,vip", "", "79261234567,retail12"])  # 20 bytes: fine
    assert upload(api, text + newline).json()["created"] == 2

    response = upload(api, text + "3" + newline + "79361234567,vip" + newline)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"row": 0, "phone": "", "field": "file", "message": "Line 4 is longer than the limit of 20 bytes."}
    ]
    assert ClientImport.objects.count() == 1


def test_a_file_just_within_the_caps_is_imported(api, settings):
    settings.MAILER_IMPORT_MAX_COLUMNS, settings.MAILER_IMPORT_MAX_LINE = 4, 30
    header = "phone,tag,timezone,opted_out"
    body = upload(api, csv_of("79161234567,vips,Asia/Tokyo,no", header=header)).json()  # 30 bytes
    assert (body["state"], body["created"]) == ("done", 1)


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        ("MAILER_IMPORT_MAX_LINE", "Line 2 is longer than the limit of 12 bytes."),
        ("MAILER_IMPORT_MAX_COLUMNS", "The header has 2 columns, more than the limit of 1."),
    ],
)
def test_a_stored_file_over_a_lowered_cap_fails_saying_why(db, settings, cap, message):
    """The worker reads through the same caps: a file stored before a cap was lowered (or before
    there were caps) is never read whole."""
    imp = start_import(io.BytesIO(csv_of("79161234567,vip", header="phone,tag").encode()), enqueue=False)
    setattr(settings, cap, {"MAILER_IMPORT_MAX_LINE": 12, "MAILER_IMPORT_MAX_COLUMNS": 1}[cap])
    assert run_import(imp.pk) == "failed"
    imp.refresh_from_db()
    assert imp.errors == [[0, "", message]] and not Client.objects.exists()


def test_a_quoted_value_running_past_its_line_is_an_error_of_its_row(db):
    """csv would join the lines that follow into that value until a quote closes it: the rest of
    the file, or millions of lines of one row."""
    text = 'phone,tag\n79161234567,"vip\n79261234567,retail\n"x\n"y\n79361234567,vip\n'
    report = import_clients(text, all_or_nothing=False)
    assert [(e.row, e.field) for e in report.errors] == [(2, ""), (4, ""), (5, "")]
    assert (
        report.errors[0].message
        == "A quoted value runs on past the end of its line; no value may hold a line break."
    )
    assert sorted(Client.objects.values_list("phone", flat=True)) == ["79261234567", "79361234567"]


def test_the_duplicate_check_finds_every_first_row_in_a_sample():
    """The table behind "Duplicate of row N": a sample of phones across the whole range (its ends
    too) in a table sized for a small file, so that slots collide."""
    rng = random.Random(21)
    phones = [79000000000, 79999999999, *rng.sample(range(79000000001, 79999999999), 700)]
    seen = _PhoneRows(size=12 * len(phones))
    for row, phone in enumerate(phones, 2):
        assert seen.get(phone) is None
        seen.add(phone, row)
    assert len(seen.slots) == 1024
    assert [seen.get(phone) for phone in phones] == list(range(2, len(phones) + 2))
    assert seen.get(79161234567) is None


def test_the_stored_errors_are_bounded(db, monkeypatch):
    monkeypatch.setattr("mailer.importing.ERRORS_KEPT", 5)
    report = import_clients(csv_of(*(f"bad{i},,UTC" for i in range(20))), all_or_nothing=False)
    assert (report.error_count, [e.row for e in report.errors]) == (20, [2, 3, 4, 5, 6])
    assert len(ClientImport.objects.get().errors) == 5
