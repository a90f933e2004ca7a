from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mailer import stats
from mailer.models import Mailing, Message, MessageStatus

pytestmark = pytest.mark.django_db


def test_counts_by_status(make_mailing, make_client, now):
    a, b = make_mailing(), make_mailing()
    clients = [make_client() for _ in range(5)]
    for client, status in zip(clients, ["sent", "sent", "failed", "pending", "expired"], strict=True):
        Message.objects.create(
            mailing=a, client=client, status=status, sent_at=now if status == "sent" else None
        )
    Message.objects.create(mailing=b, client=clients[0], status=MessageStatus.CANCELLED)

    got = {m.pk: m for m in stats.with_counts(Mailing.objects.all())}
    assert (got[a.pk].sent_count, got[a.pk].failed_count, got[a.pk].pending_count) == (2, 1, 1)
    assert (got[a.pk].expired_count, got[a.pk].cancelled_count, got[a.pk].total_count) == (1, 0, 5)
    assert (got[b.pk].cancelled_count, got[b.pk].total_count) == (1, 1)
    assert stats.counts_of(a) == {
        "pending": 1,
        "sent": 2,
        "failed": 1,
        "expired": 1,
        "cancelled": 0,
        "total": 5,
    }
    assert stats.totals(Mailing.objects.all())["total"] == 6


def test_overview_query_count_does_not_grow(make_mailing, make_client):
    client = make_client()
    for _ in range(3):
        Message.objects.create(mailing=make_mailing(), client=client)
    with CaptureQueriesContext(connection) as few:
        list(stats.with_counts(Mailing.objects.all()))
    for _ in range(20):
        Message.objects.create(mailing=make_mailing(), client=client)
    with CaptureQueriesContext(connection) as many:
        assert len(list(stats.with_counts(Mailing.objects.all()))) == 23
    assert len(few) == len(many) == 1


def test_timing(make_mailing, make_client, now):
    mailing = make_mailing()
    for i in range(11):
        Message.objects.create(
            mailing=mailing, client=make_client(), status="sent", sent_at=now + timedelta(seconds=6 * i)
        )
    assert stats.timing(mailing)["messages_per_minute"] == 11.0
