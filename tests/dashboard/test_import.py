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
    assert "The check found: 2 new, 0 to update, 0 unchanged, " in html
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
    assert rows[0] == ["Row", "Field", "Error"]  # in the reader's language, as every export
    assert [r[:2] for r in rows[1:]] == [["4", "phone"], ["5", "timezone"]]
    assert all(not r[2].startswith("=") for r in rows[1:])


def test_bad_input_is_explained(manager_client, settings):
    response = manager_client.post("/clients/import/", {"import": "1"})
    assert "This field is required." in response.content.decode()
    _upload(manager_client, "phone\n7916\xe9".encode("latin-1"))
    imp = work()
    assert imp.state == "failed" and "not UTF-8" in imp.errors[0][2]
    settings.MAILER_IMPORT_MAX_MB = 0
    response = _upload(manager_client, GOOD)
    assert "The file is larger than 0 MB; split it." in response.content.decode()
    assert ClientImport.objects.count() == 1 and not Client.objects.exists()


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
