"""Client files as Russian Excel writes them (issue 23): semicolons, Windows-1251 or UTF-8 with a
byte order mark, .xlsx workbooks, Russian column names; and what a workbook may cost."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook

from mailer.importing import ImportRefused, import_clients, run_import, start_import
from mailer.models import Client, ClientImport

pytestmark = pytest.mark.django_db


def clients() -> list[tuple[str, str, str]]:
    return list(Client.objects.order_by("phone").values_list("phone", "tag", "timezone"))


def refusal(data: bytes, filename: str = "") -> str:
    """Why the file is refused: at the upload, or (what only reading finds) by the worker."""
    try:
        imp = start_import(io.BytesIO(data), filename=filename, enqueue=False)
    except ImportRefused as e:
        return str(e)
    assert run_import(imp.pk) == "failed"
    imp.refresh_from_db()
    return imp.errors[0][2]


def xlsx(*rows: tuple) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "encoding", "separator"),
    [
        # Excel's "CSV UTF-8 (comma delimited)" in a Russian locale: a BOM and semicolons.
        ("\ufeffphone;tag;timezone\r\n79161234567;Москва;\r\n79261234567;vip;UTC\r\n".encode(), "utf-8", ";"),
        # Excel's plain "CSV (comma delimited)": Windows-1251 and semicolons.
        (
            "phone;tag;timezone\r\n79161234567;Москва;\r\n79261234567;vip;UTC\r\n".encode("cp1251"),
            "cp1251",
            ";",
        ),
        # Anything else's: UTF-8 without a BOM, commas.
        (
            b"phone,tag,timezone\n79161234567,\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0,\n79261234567,vip,UTC\n",
            "utf-8",
            ",",
        ),
        ("phone\ttag\ttimezone\n79161234567\tМосква\t\n79261234567\tvip\tUTC\n".encode(), "utf-8", "\t"),
    ],
)
def test_csv_as_excel_saves_it(data, encoding, separator):
    report = import_clients(data, all_or_nothing=True)
    assert (report.created, report.errors, report.default_timezone) == (2, [], 1)
    assert clients() == [("79161234567", "Москва", "Europe/Moscow"), ("79261234567", "vip", "UTC")]
    imp = ClientImport.objects.get()
    assert (imp.file_format, imp.encoding, imp.separator) == ("csv", encoding, separator)


def test_a_utf8_character_split_between_pieces_is_still_utf8(monkeypatch):
    data = "phone;tag\n79161234567;Москва\n".encode()
    monkeypatch.setattr("mailer.importing.PIECE_BYTES", data.index("М".encode()) + 1)  # inside "М"
    assert import_clients(data, all_or_nothing=True).errors == []
    assert ClientImport.objects.get().encoding == "utf-8" and clients()[0][1] == "Москва"


def test_russian_column_names_in_any_case():
    text = "Телефон;МЕТКА;Часовой пояс;отписан\n+7 916 111 00 13;клиенты;Asia/Tokyo;да\n89161110017;;;нет\n"
    report = import_clients(text.encode("cp1251"), all_or_nothing=True)
    assert (report.created, report.opted_out, report.default_timezone, report.errors) == (2, 1, 1, [])
    assert clients() == [("79161110013", "клиенты", "Asia/Tokyo"), ("79161110017", "", "Europe/Moscow")]
    report = import_clients("Тег,Телефон,телефон\n".encode(), all_or_nothing=True)
    assert [e.message for e in report.errors] == ["A column is named twice."]


def test_xlsx_first_sheet_phone_as_number_cyrillic_tag_blank_zone():
    data = xlsx(
        ("Телефон", "Метка", "Часовой пояс"),
        (79161234567, "Москва", None),  # a number cell, as Excel stores a typed phone
        (79261234567.0, "vip", "UTC"),  # a float
        (),  # a blank row: skipped, still counted
        ("bad", "vip", "UTC"),
    )
    report = import_clients(data, all_or_nothing=False)
    assert (report.created, report.default_timezone) == (2, 1)
    assert [(e.row, e.field, e.phone) for e in report.errors] == [(5, "phone", "bad")]  # Excel's row 5
    assert clients() == [("79161234567", "Москва", "Europe/Moscow"), ("79261234567", "vip", "UTC")]
    assert ClientImport.objects.get().file_format == "xlsx"


def test_xlsx_through_the_api(api):
    data = xlsx(("phone", "tag"), (79161234567, "vip"))
    upload = SimpleUploadedFile("clients.xlsx", data, content_type="application/vnd.ms-excel")
    response = api.post("/api/v1/clients/import/", {"file": upload}, format="multipart")
    assert response.status_code == 202
    run_import(response.json()["id"])
    body = api.get(response["Location"]).json()
    assert (body["state"], body["created"], body["default_timezone"]) == ("done", 1, 1)


def test_an_xlsx_that_is_not_a_workbook_is_refused():
    message = refusal(b"phone\n79161234567\n", filename="clients.xlsx")
    assert message == "The file is neither CSV text nor an Excel workbook (.xlsx)."
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    assert refusal(out.getvalue()).startswith("Not a readable Excel workbook (.xlsx): ")
    assert not ClientImport.objects.exists()


def test_an_xlsx_zip_bomb_is_refused_before_it_is_unpacked(settings):
    """A sheet of zeros packs a thousandfold: its declared unpacked size is refused at the upload."""
    settings.MAILER_IMPORT_MAX_MB = 1
    data = bytearray(xlsx(("phone",), (79161234567,)))
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(bytes(data))) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z,
    ):
        for part in src.infolist():
            z.writestr(part, src.read(part))
        z.writestr("xl/worksheets/sheet2.xml", b" " * (11 * 2**20))  # 11 MB in ~11 KB
    assert len(out.getvalue()) < 100_000
    assert refusal(out.getvalue()).startswith(
        "Unpacked, the workbook takes 11 MB, more than the limit of 10 MB"
    )
    assert not ClientImport.objects.exists()


def test_an_xlsx_row_over_the_cap_is_refused(settings):
    """The XML parser holds a row's whole element: a row of many cells is refused as it is read."""
    settings.MAILER_IMPORT_MAX_LINE = 64  # a row's XML: at most 16 times that
    data = xlsx(("phone", "tag"), (79161234567, "x" * 10), (79261234567, *["y"] * 200))
    assert refusal(data) == "A row of the sheet takes more than 1024 bytes of XML; split the sheet."
    assert not Client.objects.exists()


def test_an_xlsx_header_over_the_column_cap_is_refused(settings):
    settings.MAILER_IMPORT_MAX_COLUMNS = 2
    message = refusal(xlsx(("phone", "tag", "timezone")))
    assert message == "The header has 3 columns, more than the limit of 2."
