"""The first second (issue 27): an audience is resolved a slice at a time, its first chunk small,
so the first messages go out while the rest is resolved; and the schedule ticks at a mailing's
start time itself. The speed is bench/engine.py's (docs/benchmarks.md); here, what must hold."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from engine import scheduling
from mailer.models import Mailing, MailingCounts, MailingState, Message, MessageStatus

pytestmark = pytest.mark.django_db


def statuses(mailing: Mailing) -> dict[str, int]:
    return dict(Counter(Message.objects.filter(mailing=mailing).values_list("status", flat=True)))


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(scheduling, "RESOLVE_FIRST", 5)
    monkeypatch.setattr(scheduling, "RESOLVE_CHUNK", 10)
    monkeypatch.setattr(scheduling, "RESOLVE_SLICE", 0.0)  # one chunk per call
    yield
    scheduling._resolving.clear()


def test_the_first_chunk_is_sent_while_the_rest_is_resolved(
    small_chunks, make_mailing, make_client, make_deliverer, provider
):
    for i in range(32):
        make_client(f"7900{i:07d}")
    mailing = make_mailing()
    scheduling.tick()  # started, and its first chunk written
    assert Message.objects.filter(mailing=mailing).count() == 5
    deliverer = make_deliverer()
    assert deliverer.run_batch() == 5  # sent before the rest of the audience is known
    assert len(provider.record.accepted) == 5
    written = [5]
    while Mailing.objects.get(pk=mailing.pk).resolved_version == 0:
        scheduling.resolve_more()
        written.append(Message.objects.filter(mailing=mailing).count())
        deliverer.run_batch()
    assert written == [5, 15, 25, 32]  # a chunk at a time, between rounds
    scheduling.tick()
    deliverer.run_batch()
    scheduling.tick()
    assert Mailing.objects.get(pk=mailing.pk).state == MailingState.FINISHED
    assert Counter(provider.record.accepted.values()) == {1: 32}
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None


def test_a_filter_edit_mid_resolution_starts_it_again_and_nothing_is_doubled(
    small_chunks, make_mailing, make_client
):
    for i in range(30):
        make_client(f"7900{i:07d}", tag="vip" if i % 2 else "")  # the odd ones
    mailing = make_mailing()
    scheduling.tick()
    scheduling.resolve_more()
    assert Message.objects.filter(mailing=mailing).count() == 15  # the first 15 clients
    Mailing.objects.filter(pk=mailing.pk).update(filter_tags=["vip"], audience_version=2)
    for _ in range(10):
        scheduling.tick()
    mailing.refresh_from_db()
    assert mailing.resolved_version == 2 and not scheduling._resolving
    pending = Message.objects.filter(mailing=mailing, status=MessageStatus.PENDING)
    assert sorted(pending.values_list("client__tag", flat=True)) == ["vip"] * 15
    # The first 15 stay (7 of them vip), the other 8 vip are added; the 8 others are cancelled.
    assert statuses(mailing) == {MessageStatus.PENDING: 15, MessageStatus.CANCELLED: 8}
    pairs = Counter(Message.objects.filter(mailing=mailing).values_list("client_id", flat=True))
    assert set(pairs.values()) == {1}
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None


def test_the_tick_says_when_the_next_mailing_starts(make_mailing):
    now = timezone.now()
    assert scheduling.tick(now) is None
    make_mailing(start_at=now + timedelta(seconds=1.5))
    assert scheduling.tick(now) == pytest.approx(1.5)
    assert scheduling.next_start(now - timedelta(seconds=5)) is None  # not within TICK_AHEAD
