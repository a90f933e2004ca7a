"""CSV exports stream, start with a BOM for Excel, and carry ISO dates."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest
from django.http import StreamingHttpResponse

from dashboard import charts
from mailer.models import Message, MessageStatus, normalize_text

pytestmark = pytest.mark.django_db


def _rows(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def test_messages_export(viewer_client, make_mailing, make_client):
    mailing = make_mailing(text="Hello, world")
    sent_at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    Message.objects.create(
        mailing=mailing,
        client=make_client(phone="79161234567"),
        status=MessageStatus.SENT,
        sent_at=sent_at,
        attempts=1,
    )
    Message.objects.create(
        mailing=mailing,
        client=make_client(phone="79001234567"),
        status=MessageStatus.FAILED,
        last_error='bad "number", really',
    )
    response = viewer_client.get(f"/mailings/{mailing.pk}/messages.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="mailing-{mailing.pk}-messages.csv"'
    rows = _rows(response)
    assert rows[0] == [
        "message_id",
        "phone",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "last_error",
        "text",
    ]
    assert rows[1][1:4] == ["79161234567", "sent", "1"]
    assert rows[1][5] == "2026-03-01T12:30:00+00:00"
    assert rows[2][1:3] == ["79001234567", "failed"] and rows[2][5] == ""
    assert rows[2][6] == 'bad "number", really'
    assert len(rows) == 3


def test_messages_export_follows_status_filter(viewer_client, make_mailing, make_client):
    mailing = make_mailing()
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.SENT)
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.FAILED)
    rows = _rows(viewer_client.get(f"/mailings/{mailing.pk}/messages.csv?status=failed"))
    assert [r[2] for r in rows[1:]] == ["failed"]


def test_messages_export_keeps_deleted_clients(viewer_client, make_mailing, make_client):
    mailing = make_mailing()
    client = make_client()
    Message.objects.create(mailing=mailing, client=client, status=MessageStatus.SENT)
    client.delete()
    rows = _rows(viewer_client.get(f"/mailings/{mailing.pk}/messages.csv"))
    assert rows[1][1] == "" and rows[1][2] == "sent"


def test_export_reads_in_chunks(viewer_client, make_mailing, make_client, monkeypatch):
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
    assert len(_rows(viewer_client.get(f"/mailings/{mailing.pk}/messages.csv"))) == 4
    assert calls == [2000]


def test_overview_export(viewer_client, make_mailing, make_client, now):
    from datetime import timedelta

    mailing = make_mailing(text="Spring", filter_tags=["vip", "new"])
    make_mailing(text="Ancient", start_at=now - timedelta(days=40), end_at=now - timedelta(days=39))
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.SENT)
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.EXPIRED)
    day = (now - timedelta(days=3)).date().isoformat()
    rows = _rows(viewer_client.get(f"/statistics/mailings.csv?start_from={day}"))
    header = rows[0]
    assert header[:8] == [
        "mailing_id",
        "text",
        "state",
        "start_at",
        "end_at",
        "tags",
        "operator_codes",
        "total",
    ]
    assert len(rows) == 2
    row = dict(zip(header, rows[1], strict=True))
    assert row["text"] == "Spring" and row["tags"] == "new vip"
    assert row["total"] == "2" and row["sent"] == "1" and row["expired"] == "1" and row["failed"] == "0"
    assert row["delivery_rate"] == "50.0"
    assert row["start_at"] == mailing.start_at.isoformat()


def test_exports_need_view_permission(client, django_user_model, make_mailing):
    mailing = make_mailing()
    client.force_login(django_user_model.objects.create_user("nobody", password="pw"))
    assert client.get(f"/mailings/{mailing.pk}/messages.csv").status_code == 403
    assert client.get("/statistics/mailings.csv").status_code == 403


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
    from datetime import timedelta

    start = datetime(2026, 1, 1, tzinfo=UTC)
    buckets = charts.fill_buckets(
        {start + timedelta(minutes=2): 3}, start, start + timedelta(minutes=4), timedelta(minutes=1)
    )
    assert [n for _, n in buckets] == [0, 0, 3, 0, 0]
    merged, factor = charts.coarsen(buckets, 2)
    assert factor == 3 and [n for _, n in merged] == [3, 0]


FORMULAS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "=cmd|' /C calc'!A0"]


def test_messages_export_neutralises_formulas(viewer_client, make_mailing, make_client):
    mailing = make_mailing()
    for error in FORMULAS:
        Message.objects.create(mailing=mailing, client=make_client(), last_error=error)
    rows = _rows(viewer_client.get(f"/mailings/{mailing.pk}/messages.csv"))
    column = rows[0].index("last_error")
    assert [r[column] for r in rows[1:]] == ["'" + f for f in FORMULAS]


def test_overview_export_neutralises_formulas(viewer_client, make_mailing):
    for i, text in enumerate(FORMULAS):
        make_mailing(text=text, filter_tags=[f"@tag{i}"])
    rows = _rows(viewer_client.get("/statistics/mailings.csv"))
    header = rows[0]
    cells = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    # A text is saved without the spaces around it (normalize_text): "\t=1" is stored as "=1".
    assert sorted(c["text"] for c in cells) == sorted("'" + normalize_text(f) for f in FORMULAS)
    assert all(c["tags"].startswith("'@tag") for c in cells)
