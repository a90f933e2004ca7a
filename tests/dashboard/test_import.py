"""The CSV import pages: upload, the worker's progress (htmx polling), the report, the go-ahead
after a check, the downloadable errors. `work()` runs the queued task as a worker would."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mailer.importing import run_import
from mailer.models import Client, ClientImport
from tests.dashboard.conftest import HTMX

pytestmark = pytest.mark.django_db

GOOD = "phone,tag,timezone\n79161234567,vip,Europe/Moscow\n79261234567,retail,UTC\n"
MIXED = GOOD + "12345,vip,UTC\n"


def _upload(client, text: str | bytes, button: str = "import", **fields):
    data = text.encode() if isinstance(text, str) else text
    upload = SimpleUploadedFile("clients.csv", data, content_type="text/csv")
    return client.post("/clients/import/", {"file": upload, button: "1", **fields})


def work() -> ClientImport:
    imp = ClientImport.objects.latest("pk")
    run_import(imp.pk)
    imp.refresh_from_db()
    return imp


def test_import_runs_in_the_background_and_the_page_follows_it(manager_client, manager):
    response = _upload(manager_client, "\ufeff" + GOOD, all_or_nothing="on")
    imp = ClientImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/clients/import/{imp.pk}/"
    assert (imp.state, imp.created_by, imp.filename, imp.size) == ("queued", manager, "clients.csv", 75)
    assert not Client.objects.exists()  # nothing happens in the request

    page = manager_client.get(f"/clients/import/{imp.pk}/")
    html = page.content.decode()
    assert 'hx-trigger="every 1s"' in html and "Queued" in html
    assert page.context["rows"][0] == ["79161234567", "vip", "Europe/Moscow"]  # the file's first rows

    assert work().state == "done"
    fragment = manager_client.get(f"/clients/import/{imp.pk}/", **HTMX)
    assert fragment.status_code == 286  # htmx: stop polling
    assert "Done: 2 added, 0 updated, 0 unchanged." in fragment.content.decode()
    assert "every 1s" not in fragment.content.decode()
    assert sorted(Client.objects.values_list("phone", flat=True)) == ["79161234567", "79261234567"]


def test_check_first_then_confirm(manager_client):
    _upload(manager_client, MIXED, button="check")
    imp = work()
    assert imp.state == "checked" and not Client.objects.exists()
    html = manager_client.get(f"/clients/import/{imp.pk}/").content.decode()
    assert (
        "2 rows are good: importing would add 2 clients, update 0, leave 0 unchanged. 1 row has errors"
        in html
    )
    assert 'id="confirm-import"' in html  # not all-or-nothing: the good rows may go in
    response = manager_client.post(f"/clients/import/{imp.pk}/confirm/")
    assert response.status_code == 302
    assert work().state == "done"
    assert Client.objects.count() == 2
    assert manager_client.post(f"/clients/import/{imp.pk}/confirm/", follow=True).status_code == 200
    assert Client.objects.count() == 2


def test_all_or_nothing_saves_nothing_on_error(manager_client):
    _upload(manager_client, MIXED, all_or_nothing="on")
    imp = work()
    assert imp.state == "failed" and not imp.written
    html = manager_client.get(f"/clients/import/{imp.pk}/").content.decode()
    assert "Nothing was saved: 1 row with errors (all or nothing)." in html
    assert "import-errors" in html
    assert not Client.objects.exists()


def test_errors_download_as_csv_safe_for_spreadsheets(manager_client):
    _upload(manager_client, GOOD + "=HYPERLINK(1),vip,UTC\n79031234567,,Mars/Base\n")
    imp = work()
    response = manager_client.get(f"/clients/import/{imp.pk}/errors.csv")
    assert response["Content-Disposition"] == f'attachment; filename="import-{imp.pk}-errors.csv"'
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows[0] == ["Row", "Phone", "Column", "Problem"]
    # The phone as the row had it (a formula's start made text); the column as the reader says it.
    assert [r[:3] for r in rows[1:]] == [["4", "'=HYPERLINK(1)", "phone"], ["5", "79031234567", "timezone"]]
    assert all(not r[3].startswith("=") for r in rows[1:])


def test_bad_input_is_explained(manager_client, settings):
    response = manager_client.post("/clients/import/", {"import": "1"})
    assert "This field is required." in response.content.decode()
    response = _upload(manager_client, b"\x89PNG\r\n\x1a\n\x00\x00")
    assert "neither CSV text nor an Excel workbook" in response.content.decode()
    settings.MAILER_IMPORT_MAX_MB = 0
    response = _upload(manager_client, GOOD)
    assert "The file is larger than 0 MB; split it." in response.content.decode()
    assert not ClientImport.objects.exists() and not Client.objects.exists()


def test_viewer_cannot_import(viewer_client):
    assert viewer_client.get("/clients/import/").status_code == 403
    assert _upload(viewer_client, GOOD).status_code == 403
    assert not ClientImport.objects.exists()


def test_reimport_reports_unchanged_rows(manager_client):
    _upload(manager_client, GOOD)
    work()
    _upload(manager_client, GOOD)
    imp = work()
    assert (imp.created, imp.updated, imp.unchanged) == (0, 0, 2)
    assert "2 unchanged" in manager_client.get(f"/clients/import/{imp.pk}/").content.decode()
    assert len(manager_client.get("/clients/import/").context["recent"]) == 2


def test_a_file_over_a_cap_is_refused_in_the_form_in_the_reader_s_language(manager_client, settings):
    settings.MAILER_IMPORT_MAX_COLUMNS = 2
    english = _upload(manager_client, GOOD).content.decode()
    assert "The header has 3 columns, more than the limit of 2." in english
    settings.MAILER_IMPORT_MAX_LINE = 8
    upload = SimpleUploadedFile("clients.csv", GOOD.encode(), content_type="text/csv")
    russian = manager_client.post(
        "/clients/import/", {"file": upload, "import": "1"}, HTTP_ACCEPT_LANGUAGE="ru"
    )
    assert "Строка 1 длиннее предела в 8 байт." in russian.content.decode()
    assert not ClientImport.objects.exists()


def test_the_preview_never_reads_past_the_caps(manager_client, settings):
    """The page shows the file's first rows: a file stored before a cap was lowered is not read
    whole to show them (a header of 2.8 million columns took the web process to 313 MB)."""
    _upload(manager_client, "phone,tag\n79161234567," + "x" * 40 + "\n")
    imp = ClientImport.objects.get()
    assert manager_client.get(f"/clients/import/{imp.pk}/").context["rows"] == [["79161234567", "x" * 40]]
    settings.MAILER_IMPORT_MAX_LINE = 40
    page = manager_client.get(f"/clients/import/{imp.pk}/")
    assert page.status_code == 200 and (page.context["header"], page.context["rows"]) == ([], [])
    assert 'id="preview-rows"' not in page.content.decode()


def test_an_import_that_failed_after_writing_says_what_it_saved(manager_client):
    _upload(manager_client, GOOD)
    imp = ClientImport.objects.get()
    ClientImport.objects.filter(pk=imp.pk).update(state="failed", written=True, rows_written=2)
    html = manager_client.get(f"/clients/import/{imp.pk}/").content.decode()
    assert "The import stopped after saving 2 rows." in html and "Nothing was saved" not in html


def test_the_check_of_a_file_with_errors_is_a_neutral_summary_in_russian(manager_client):
    """Check, all or nothing on: what importing would do, in neutral colours; only the errors red.
    The page and the errors file name the columns and the phones as the marketer typed them."""
    make = "Телефон;Метка;Часовой пояс\n+7 916 111 00 13;vip;\n89161110017;;UTC\n12345;vip;Mars/Base\n"
    upload = SimpleUploadedFile("clients.csv", make.encode("cp1251"), content_type="text/csv")
    client_post = {"file": upload, "check": "1", "all_or_nothing": "on"}
    manager_client.post("/clients/import/", client_post, HTTP_ACCEPT_LANGUAGE="ru")
    imp = work()
    assert (imp.state, imp.rows_to_write, imp.error_count, imp.default_timezone) == ("checked", 2, 2, 1)
    html = manager_client.get(f"/clients/import/{imp.pk}/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    summary = html[html.index('id="check-summary"') : html.index("import-errors")]
    assert "bg-danger" not in html and "text-danger" not in summary and "Ничего не сохранено" not in html
    assert "CSV, Windows-1251, разделитель ;" in html
    assert "2 строки в порядке" in summary and "2 строки с ошибками" in summary
    assert "1 строка без часового пояса получит Москва (UTC+3)" in summary
    assert 'id="confirm-import"' not in html  # all or nothing, and errors: fix the file first
    assert "<td>12345</td><td>Телефон</td>" in html and "<td>12345</td><td>Часовой пояс</td>" in html

    response = manager_client.get(f"/clients/import/{imp.pk}/errors.csv", HTTP_ACCEPT_LANGUAGE="ru")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode()[1:]), delimiter=";"))
    assert rows[0] == ["Строка", "Телефон", "Столбец", "Ошибка"]
    assert [r[:3] for r in rows[1:]] == [["4", "12345", "Телефон"], ["4", "12345", "Часовой пояс"]]

    _upload(manager_client, make.encode("cp1251"), button="check")  # valid rows only: go on
    imp = work()
    assert 'id="confirm-import"' in manager_client.get(f"/clients/import/{imp.pk}/").content.decode()
    manager_client.post(f"/clients/import/{imp.pk}/confirm/")
    assert work().state == "done"
    assert sorted(Client.objects.values_list("phone", flat=True)) == ["79161110013", "79161110017"]


def test_an_xlsx_upload_on_the_page(manager_client):
    from openpyxl import Workbook

    workbook = Workbook()
    for row in (("phone", "tag"), (79161234567, "Москва")):
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    _upload(manager_client, out.getvalue())
    imp = work()
    assert (imp.state, imp.file_format) == ("done", "xlsx")
    page = manager_client.get(f"/clients/import/{imp.pk}/")
    assert page.context["rows"] == [["79161234567", "Москва"]]
    assert "Excel workbook (.xlsx), its first sheet" in page.content.decode()
    assert "1 row without a time zone got Moscow (UTC+3)." in page.content.decode()
