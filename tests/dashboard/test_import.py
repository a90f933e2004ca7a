"""The CSV import page over mailer.importing.import_clients (the API's importer)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mailer.models import Client

pytestmark = pytest.mark.django_db

GOOD = "phone,tag,timezone\n79161234567,vip,Europe/Moscow\n79261234567,retail,UTC\n"
MIXED = GOOD + "12345,vip,UTC\n"


def test_preview_shows_rows_and_errors_and_saves_nothing(manager_client):
    response = manager_client.post(
        "/clients/import/", {"text": MIXED, "all_or_nothing": "on", "preview": "1"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert not Client.objects.exists()
    assert response.context["preview"]["error_count"] == 1
    assert response.context["preview"]["errors"][0]["row"] in (3, 4)  # 1-based data row or file line
    assert response.context["rows"][0] == ["79161234567", "vip", "Europe/Moscow"]
    assert 'id="preview-rows"' in html and "import-errors" in html
    # The checked content is carried into the text box for the Import button.
    assert response.context["form"].initial["text"] == MIXED


def test_import_from_uploaded_file_with_bom(manager_client):
    upload = SimpleUploadedFile("clients.csv", ("\ufeff" + GOOD).encode(), content_type="text/csv")
    response = manager_client.post("/clients/import/", {"file": upload, "import": "1"}, follow=True)
    assert sorted(Client.objects.values_list("phone", flat=True)) == ["79161234567", "79261234567"]
    messages = [str(m) for m in response.context["messages"]]
    assert any("2 clients added" in m for m in messages)
    assert response.context["report"]["created"] == 2


def test_all_or_nothing_saves_nothing_on_error(manager_client):
    response = manager_client.post(
        "/clients/import/", {"text": MIXED, "all_or_nothing": "on", "import": "1"}, follow=True
    )
    assert not Client.objects.exists()
    assert response.context["report"]["error_count"] == 1
    assert any("nothing saved" in str(m) for m in response.context["messages"])


def test_partial_import_keeps_good_rows(manager_client):
    response = manager_client.post("/clients/import/", {"text": MIXED, "import": "1"}, follow=True)
    assert Client.objects.count() == 2
    assert response.context["report"]["error_count"] == 1
    assert "import-errors" in response.content.decode()


def test_bad_input_is_explained(manager_client):
    response = manager_client.post("/clients/import/", {"import": "1"})
    assert "Choose a CSV file or paste its contents." in response.content.decode()
    upload = SimpleUploadedFile("clients.csv", "phone\n7916\xe9".encode("latin-1"))
    response = manager_client.post("/clients/import/", {"file": upload, "import": "1"})
    assert "not UTF-8" in response.content.decode()
    assert not Client.objects.exists()


def test_viewer_cannot_import(viewer_client):
    assert viewer_client.get("/clients/import/").status_code == 403
    assert viewer_client.post("/clients/import/", {"text": GOOD, "import": "1"}).status_code == 403
    assert not Client.objects.exists()


def test_reimport_reports_unchanged_rows(manager_client):
    manager_client.post("/clients/import/", {"text": GOOD, "import": "1"})
    response = manager_client.post("/clients/import/", {"text": GOOD, "import": "1"}, follow=True)
    report = response.context["report"]
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 2)
    assert "2 unchanged" in response.content.decode()
