"""Exports as Russian (or English) Excel reads them: CSV in the reader's language, separator, time
zone and number format, with a BOM; .xlsx with typed cells; both stream from the database in chunks,
keep cells from running as formulas and need the same permission."""

from __future__ import annotations

import csv
import io
import re
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.http import FileResponse, StreamingHttpResponse
from openpyxl import load_workbook

from accounts.models import Profile
from dashboard import charts
from mailer.models import CANCELLED_WHY, Mailing, Message, MessageStatus, normalize_text
from tests.dashboard.conftest import HTMX

pytestmark = pytest.mark.django_db

RU = {"HTTP_ACCEPT_LANGUAGE": "ru"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")
SENT_AT = datetime(2026, 12, 4, 14, 30, 58, 141541, tzinfo=UTC)  # 17:30:58 in Moscow


def _body(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return body[1:]


def _rows(response, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(_body(response)), delimiter=delimiter))


def _sheet(response):
    assert isinstance(response, FileResponse)
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return book.worksheets[0]


@pytest.fixture
def moscow_viewer(viewer_client, viewer):
    profile = Profile.of(viewer)
    profile.timezone = "Europe/Moscow"
    profile.save()
    return viewer_client


@pytest.fixture
def mailing(make_mailing, make_client):
    mailing = make_mailing(text="Hello, world")
    Message.objects.create(
        mailing=mailing,
        client=make_client(phone="79161234567"),
        status=MessageStatus.SENT,
        sent_at=SENT_AT,
        attempts=1,
    )
    Message.objects.create(
        mailing=mailing,
        client=make_client(phone="79001234567"),
        status=MessageStatus.CANCELLED,
        last_error=CANCELLED_WHY,
    )
    return mailing


def test_messages_csv_as_russian_excel_reads_it(moscow_viewer, mailing):
    mailing.messages.filter(status="sent").update(
        delivery_status="undelivered",
        delivered_at=datetime(2026, 12, 4, 14, 31, 10, tzinfo=UTC),
        delivery_error="absent subscriber",
    )
    response = moscow_viewer.get(f"/mailings/{mailing.pk}/messages.csv", **RU)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="mailing-{mailing.pk}-messages.csv"'
    rows = _rows(response, delimiter=";")
    assert rows[0] == [
        "№ сообщения",
        "Телефон",
        "Статус",
        "Попытки",
        "Время создания",
        "Время приёма",
        "Причина",
        "Текст",
        "Отчёт о доставке",
        "Время доставки",
        "Ответ шлюза",
    ]
    assert rows[1][1:4] == ["79161234567", "Принято шлюзом", "1"]
    assert rows[1][8:] == ["Не доставлено", "04.12.2026 17:31:10", "absent subscriber"]
    assert rows[2][8:] == ["", "", ""]
    assert rows[1][5] == "04.12.2026 17:30:58"  # Moscow, to the second, as Russian writes it
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", rows[1][4])
    assert rows[2][2] == "Отменено" and rows[2][5] == ""
    assert rows[2][6] == "рассылка отменена"  # the engine's reason, as the mailing's page shows it
    assert len(rows) == 3


def test_messages_csv_in_english(moscow_viewer, mailing):
    rows = _rows(moscow_viewer.get(f"/mailings/{mailing.pk}/messages.csv", **EN))
    assert rows[0][:4] == ["Message no.", "Phone", "Status", "Attempts"]
    assert rows[1][2] == "Accepted by the gateway" and rows[1][5] == "2026-12-04 17:30:58"
    assert rows[2][6] == "the mailing was cancelled"


@pytest.mark.parametrize(("sep", "delimiter"), [(";", ";"), (",", ","), ("tab", "\t")])
def test_the_reader_may_choose_the_separator(moscow_viewer, mailing, sep, delimiter):
    response = moscow_viewer.get(f"/mailings/{mailing.pk}/messages.csv", {"sep": sep}, **RU)
    rows = _rows(response, delimiter=delimiter)
    assert rows[0][1] == "Телефон" and rows[1][5] == "04.12.2026 17:30:58"


def test_an_unknown_separator_is_refused_naming_it(viewer_client, mailing):
    response = viewer_client.get(f"/mailings/{mailing.pk}/messages.csv", {"sep": "|"})
    assert response.status_code == 400
    assert "sep=|" in response.content.decode()
    assert viewer_client.get("/statistics/mailings.csv", {"sep": "pipe"}).status_code == 400


def test_messages_xlsx_has_typed_cells(moscow_viewer, make_mailing, make_client):
    mailing = make_mailing()
    Message.objects.create(
        mailing=mailing,
        client=make_client(phone="79161234567"),
        status=MessageStatus.SENT,
        sent_at=SENT_AT,
        attempts=2,
        last_error="=1+1",
    )
    response = moscow_viewer.get(f"/mailings/{mailing.pk}/messages.xlsx", **RU)
    assert response["Content-Disposition"] == f'attachment; filename="mailing-{mailing.pk}-messages.xlsx"'
    sheet = _sheet(response)
    header, row = list(sheet.iter_rows(values_only=True))
    assert header[:4] == ("№ сообщения", "Телефон", "Статус", "Попытки")
    assert row[1] == "79161234567" and row[2] == "Принято шлюзом" and row[3] == 2
    assert row[5] == datetime(2026, 12, 4, 17, 30, 58)  # Moscow's clock to the second, a date cell
    assert sheet.cell(2, 6).is_date and sheet.cell(2, 6).number_format == "DD.MM.YYYY HH:MM:SS"
    assert sheet.cell(2, 7).value == "Шлюз: =1+1" and sheet.cell(2, 7).data_type == "s"  # text, no formula
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["H"].width > sheet.column_dimensions["D"].width


def test_messages_export_follows_status_filter(viewer_client, make_mailing, make_client):
    mailing = make_mailing()
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.SENT)
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.FAILED)
    rows = _rows(viewer_client.get(f"/mailings/{mailing.pk}/messages.csv?status=failed"))
    assert [r[2] for r in rows[1:]] == ["Not accepted"]
    sheet = _sheet(viewer_client.get(f"/mailings/{mailing.pk}/messages.xlsx?status=failed"))
    assert [r[2] for r in sheet.iter_rows(min_row=2, values_only=True)] == ["Not accepted"]


def test_messages_export_keeps_deleted_clients(viewer_client, make_mailing, make_client):
    mailing = make_mailing()
    client = make_client()
    Message.objects.create(mailing=mailing, client=client, status=MessageStatus.SENT)
    client.delete()
    rows = _rows(viewer_client.get(f"/mailings/{mailing.pk}/messages.csv"))
    assert rows[1][1] == "" and rows[1][2] == "Accepted by the gateway"


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_export_reads_in_chunks(viewer_client, make_mailing, make_client, monkeypatch, kind):
    # The rows come from .iterator(chunk_size=...), never from one list of everything.
    from django.db.models.query import QuerySet

    calls = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        calls.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    mailing = make_mailing()
    for _ in range(3):
        Message.objects.create(mailing=mailing, client=make_client())
    response = viewer_client.get(f"/mailings/{mailing.pk}/messages.{kind}")
    rows = _rows(response) if kind == "csv" else list(_sheet(response).iter_rows())
    assert len(rows) == 4
    assert calls == [2000]


def test_a_sheet_that_is_full_goes_on_to_the_next(viewer_client, make_mailing, make_client, monkeypatch):
    monkeypatch.setattr("mailer.xlsxfiles.MAX_ROWS", 3)  # Excel's is 1,048,576, the header included
    mailing = make_mailing()
    for _ in range(5):
        Message.objects.create(mailing=mailing, client=make_client())
    response = viewer_client.get(f"/mailings/{mailing.pk}/messages.xlsx")
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert book.sheetnames == ["Messages", "Messages (2)", "Messages (3)"]
    assert [ws.max_row for ws in book.worksheets] == [3, 3, 2]
    assert all(ws.cell(1, 2).value == "Phone" for ws in book.worksheets)


@pytest.fixture
def overview(make_mailing, make_client, now):
    mailing = make_mailing(text="Spring", filter_tags=["vip", "new"])
    make_mailing(text="Ancient", start_at=now - timedelta(days=40), end_at=now - timedelta(days=39))
    for status in (MessageStatus.SENT, MessageStatus.SENT, MessageStatus.SENT, MessageStatus.EXPIRED):
        Message.objects.create(mailing=mailing, client=make_client(), status=status)
    return mailing, (now - timedelta(days=3)).date().isoformat()


def test_overview_csv_in_russian(moscow_viewer, overview):
    mailing, day = overview
    rows = _rows(moscow_viewer.get(f"/statistics/mailings.csv?start_from={day}", **RU), delimiter=";")
    header = rows[0]
    assert header[:9] == [
        "№ рассылки",
        "Текст",
        "Вид",
        "Состояние",
        "Начало",
        "Конец",
        "Метки",
        "Коды операторов",
        "Всего",
    ]
    assert len(rows) == 2
    row = dict(zip(header, rows[1], strict=True))
    assert row["Текст"] == "Spring" and row["Метки"] == "new vip" and row["Состояние"] == "Запланирована"
    assert row["Вид"] == "Рекламная"
    assert (row["Всего"], row["Принято шлюзом"], row["Время вышло"], row["Не принято"]) == (
        "4",
        "3",
        "1",
        "0",
    )
    assert row["Принято, %"] == "75,0"
    assert row["Начало"] == f"{mailing.start_at.astimezone(MOSCOW):%d.%m.%Y %H:%M:%S}"


def test_overview_in_english_as_csv_and_xlsx(viewer_client, overview):
    mailing, day = overview
    rows = _rows(viewer_client.get(f"/statistics/mailings.csv?start_from={day}"))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert (
        row["State"] == "Scheduled" and row["Accepted, %"] == "75.0" and row["Accepted by the gateway"] == "3"
    )
    assert row["Start"] == f"{mailing.start_at:%Y-%m-%d %H:%M:%S}"  # the server's zone: UTC
    response = viewer_client.get(f"/statistics/mailings.xlsx?start_from={day}")
    assert response["Content-Disposition"] == 'attachment; filename="mailings-overview.xlsx"'
    sheet = _sheet(response)
    header, values = list(sheet.iter_rows(values_only=True))
    cells = dict(zip(header, values, strict=True))
    assert (
        cells["Accepted, %"] == 75.0 and cells["Accepted by the gateway"] == 3 and cells["Text"] == "Spring"
    )
    assert cells["Start"] == mailing.start_at.replace(tzinfo=None)


def test_exports_need_view_permission(client, django_user_model, make_mailing):
    mailing = make_mailing()
    client.force_login(django_user_model.objects.create_user("nobody", password="pw"))
    for url in (
        f"/mailings/{mailing.pk}/messages.csv",
        f"/mailings/{mailing.pk}/messages.xlsx",
        "/statistics/mailings.csv",
        "/statistics/mailings.xlsx",
    ):
        assert client.get(url).status_code == 403, url


def test_the_export_links_follow_a_filter_applied_by_htmx(viewer_client, overview):
    _mailing, day = overview
    html = viewer_client.get("/statistics/").content.decode()
    assert 'href="/statistics/mailings.csv"' in html and 'href="/statistics/mailings.xlsx"' in html
    fragment = viewer_client.get(f"/statistics/?start_from={day}", **HTMX).content.decode()
    [links] = re.findall(r'<div [^>]*id="export-overview"[^>]*>.*?</div>', fragment)
    assert 'hx-swap-oob="true"' in links
    assert f'href="/statistics/mailings.csv?start_from={day}"' in links
    assert f'href="/statistics/mailings.xlsx?start_from={day}"' in links


def test_the_mailing_page_links_both_files(viewer_client, mailing):
    html = viewer_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert f'href="/mailings/{mailing.pk}/messages.csv"' in html
    assert f'href="/mailings/{mailing.pk}/messages.xlsx"' in html


def test_bar_chart_escapes_and_scales():
    svg = str(charts.bar_chart([("<b>", 5), ("b", 10)], title="T & T"))
    assert "&lt;b&gt;" in svg and "<b>" not in svg and "T &amp; T" in svg
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([0-9.]+)"', svg)]
    assert heights[1] == 2 * heights[0]
    # One bar (a mailing sent within a minute) is a slim bar, and its label is text, never stretched.
    one = str(charts.bar_chart([("04.12 14:30", 7)], title="T"))
    assert re.search(r'<rect class="bar"[^>]* width="40.0"', one)
    assert '<span style="left: 50.00%">04.12 14:30</span>' in one and "<text" not in one
    assert "No messages" in str(charts.bar_chart([("a", 0)], title="empty"))


def test_fill_and_coarsen_buckets():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    buckets = charts.fill_buckets(
        {start + timedelta(minutes=2): 3}, start, start + timedelta(minutes=4), timedelta(minutes=1)
    )
    assert [n for _, n in buckets] == [0, 0, 3, 0, 0]
    merged, factor = charts.coarsen(buckets, 2)
    assert factor == 3 and [n for _, n in merged] == [3, 0]


FORMULAS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "=cmd|' /C calc'!A0"]


def test_messages_export_neutralises_formulas(viewer_client, make_mailing, make_client):
    for text in FORMULAS:
        mailing = make_mailing(text=text)
        Message.objects.create(mailing=mailing, client=make_client(), sent_text=mailing.current_text)
    texts, cells = [], []
    for mailing in Mailing.objects.order_by("id"):
        rows = _rows(viewer_client.get(f"/mailings/{mailing.pk}/messages.csv"))
        texts.append(rows[1][rows[0].index("Text")])
        sheet = _sheet(viewer_client.get(f"/mailings/{mailing.pk}/messages.xlsx"))
        cells.append([row for row in sheet.iter_rows(min_row=2)][0][rows[0].index("Text")])
    assert texts == ["'" + normalize_text(f) for f in FORMULAS]
    # openpyxl reads a carriage return as XML escaped it (Excel shows it as one).
    assert [c.value.replace("_x000D_", "\r") for c in cells] == [normalize_text(f) for f in FORMULAS]
    assert {c.data_type for c in cells} == {"s"}  # text, never a formula


def test_overview_export_neutralises_formulas(viewer_client, make_mailing):
    for i, text in enumerate(FORMULAS):
        make_mailing(text=text, filter_tags=[f"@tag{i}"])
    rows = _rows(viewer_client.get("/statistics/mailings.csv"))
    header = rows[0]
    cells = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    # A text is saved without the spaces around it (normalize_text): "\t=1" is stored as "=1".
    assert sorted(c["Text"] for c in cells) == sorted("'" + normalize_text(f) for f in FORMULAS)
    assert all(c["Tags"].startswith("'@tag") for c in cells)
