"""Statistics endpoints: correct counts, and a number of queries that does not grow with mailings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mailer.models import MailingState, Message, MessageStatus


@pytest.fixture
def populated(make_mailing, make_client, now):
    clients = [make_client() for _ in range(4)]
    a = make_mailing(text="A", start_at=now - timedelta(hours=2), state=MailingState.RUNNING, started_at=now)
    b = make_mailing(text="B", start_at=now - timedelta(hours=1))
    statuses = [MessageStatus.SENT, MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.PENDING]
    for client, st in zip(clients, statuses, strict=True):
        sent_at = (
            now + timedelta(minutes=len(Message.objects.filter(status=st)))
            if st == MessageStatus.SENT
            else None
        )
        Message.objects.create(mailing=a, client=client, status=st, sent_at=sent_at)
    Message.objects.create(mailing=b, client=clients[0], status=MessageStatus.CANCELLED)
    return a, b


def zeros(**counts) -> dict[str, int]:
    body = {"pending": 0, "sent": 0, "failed": 0, "expired": 0, "cancelled": 0} | counts
    body["total"] = sum(body.values())
    return body


def test_overall_stats(viewer_api, populated):
    a, b = populated
    body = viewer_api.get("/api/v1/stats/").json()
    assert body["totals"] == zeros(sent=2, failed=1, pending=1, cancelled=1)
    assert [(m["id"], m["text"], m["state"]) for m in body["mailings"]] == [
        (b.id, "B", "scheduled"),
        (a.id, "A", "running"),
    ]
    assert body["mailings"][0]["counts"] == zeros(cancelled=1)
    assert body["mailings"][1]["counts"] == zeros(sent=2, failed=1, pending=1)


def test_mailing_stats(viewer_api, populated, now):
    a, _ = populated
    body = viewer_api.get(f"/api/v1/mailings/{a.id}/stats/").json()
    assert body["id"] == a.id and body["state"] == "running"
    assert body["counts"] == zeros(sent=2, failed=1, pending=1)
    timing = body["timing"]
    assert timing["started_at"] == now.isoformat().replace("+00:00", "Z")
    assert timing["first_sent_at"] == now.isoformat().replace("+00:00", "Z")
    assert timing["last_sent_at"] == (now + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert timing["messages_per_minute"] == 2.0
    assert timing["finished_at"] is None


def test_stats_of_missing_mailing_is_a_404(viewer_api):
    assert viewer_api.get("/api/v1/mailings/12345/stats/").status_code == 404


def _queries(api, url: str) -> int:
    api.get(url)  # the token's first use is recorded: a write that the next request doesn't make
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url).status_code == 200
    return len(ctx)


def _add_mailings(make_mailing, make_client, n: int) -> None:
    client = make_client()
    for i in range(n):
        mailing = make_mailing(text=f"m{i}")
        Message.objects.create(mailing=mailing, client=client, status=MessageStatus.SENT)


def test_overall_stats_query_count_does_not_grow(viewer_api, make_mailing, make_client):
    _add_mailings(make_mailing, make_client, 3)
    few = _queries(viewer_api, "/api/v1/stats/")
    _add_mailings(make_mailing, make_client, 27)
    many = _queries(viewer_api, "/api/v1/stats/")
    assert len(viewer_api.get("/api/v1/stats/").json()["mailings"]) == 30
    assert few == many


@pytest.mark.parametrize("url", ["/api/v1/mailings/", "/api/v1/mailings/{id}/messages/"])
def test_lists_query_count_does_not_grow(viewer_api, make_mailing, make_client, url):
    mailing = make_mailing()
    url = url.format(id=mailing.id)
    for _ in range(3):
        Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.SENT)
        make_mailing()
    few = _queries(viewer_api, url)
    for _ in range(27):
        Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.SENT)
        make_mailing()
    assert few == _queries(viewer_api, url)


def test_mailing_stats_query_count_does_not_grow_with_messages(viewer_api, make_mailing, make_client):
    mailing = make_mailing()
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.SENT)
    few = _queries(viewer_api, f"/api/v1/mailings/{mailing.id}/stats/")
    for _ in range(30):
        Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.FAILED)
    assert few == _queries(viewer_api, f"/api/v1/mailings/{mailing.id}/stats/")
