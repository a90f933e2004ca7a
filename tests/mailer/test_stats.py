from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

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
    # The dashboard, the API, the exports and the report read an annotated row the same way.
    assert stats.annotated_counts(got[a.pk]) == stats.counts_of(a)
    assert stats.annotated_counts(got[b.pk]) == stats.counts_of(b)


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


def test_one_rate_for_the_api_the_home_page_and_the_detail_page(make_mailing, make_client, now):
    steady, burst = make_mailing(), make_mailing()
    for i in range(11):
        Message.objects.create(
            mailing=steady, client=make_client(), status="sent", sent_at=now + timedelta(seconds=6 * i)
        )
    for i in range(2):  # a millisecond apart: no rate to speak of
        Message.objects.create(
            mailing=burst, client=make_client(), status="sent", sent_at=now + timedelta(milliseconds=i)
        )
    rates = stats.rates([steady.pk, burst.pk])
    assert rates[steady.pk] == stats.timing(steady)["messages_per_minute"] == 11.0
    assert rates[burst.pk] is stats.timing(burst)["messages_per_minute"] is None


def test_eta_is_pending_over_the_rate(make_mailing):
    counts = dict.fromkeys(stats.STATUSES, 0) | {"sent": 30, "pending": 60, "total": 90}
    progress = stats.progress(make_mailing(), counts, 30.0)
    assert progress["percent"] == 33
    assert timedelta(minutes=1.99) < progress["eta"] - timezone.now() <= timedelta(minutes=2)
    assert stats.progress(make_mailing(), counts, None)["eta"] is None
