from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from accounts.roles import ADMIN, role_of
from mailer import stats
from mailer.models import (
    AuditEntry,
    Client,
    Mailing,
    MailingCounts,
    MailingState,
    Message,
    MessageStatus,
)

pytestmark = pytest.mark.django_db


def test_seed_demo_is_deterministic_and_idempotent():
    call_command("seed_demo", clients=300)
    phones = list(Client.objects.order_by("phone").values_list("phone", "tag", "timezone"))
    mailings = Mailing.objects.count()
    messages = Message.objects.count()
    assert len(phones) == 300 and len({p[0] for p in phones}) == 300
    assert len({p[0][1:4] for p in phones}) > 5 and len({p[2] for p in phones}) > 5  # operators, zones
    assert {MailingState.SCHEDULED, MailingState.FINISHED, MailingState.CANCELLED} <= set(
        Mailing.objects.values_list("state", flat=True)
    )
    assert messages > 0  # the finished mailing has a history for the statistics
    # Their SMS sent are their sent messages times their text's parts, as the engine would have kept.
    for finished in Mailing.objects.filter(state=MailingState.FINISHED):
        sent = finished.messages.filter(status="sent").count()
        assert sent and stats.sms_sent_of(finished) == sent * finished.sms_parts

    call_command("seed_demo", clients=300)
    assert list(Client.objects.order_by("phone").values_list("phone", "tag", "timezone")) == phones
    assert (Mailing.objects.count(), Message.objects.count()) == (mailings, messages)

    call_command("seed_demo", clients=400)  # more clients: only the missing ones are added
    assert Client.objects.count() == 400
    demo = get_user_model().objects.get(username="demo")
    assert demo.check_password("demo") and role_of(demo) == ADMIN
    for client in Client.objects.all()[:50]:
        client.full_clean()


def test_seeded_mailings_are_what_the_engine_would_have_left():
    call_command("seed_demo", clients=400, verbosity=0)
    mailings = list(Mailing.objects.order_by("id"))
    assert {m.state for m in mailings} == {
        MailingState.FINISHED,
        MailingState.SCHEDULED,
        MailingState.CANCELLED,
    }
    assert any(m.has_window for m in mailings if m.state == MailingState.FINISHED)
    assert {m.sms_parts for m in mailings} == {1, 2}
    for mailing in mailings:
        counts = stats.counts_of(mailing)
        by_status = {s: mailing.messages.filter(status=s).count() for s in MessageStatus.values}
        assert counts == by_status | {"total": sum(by_status.values())}, mailing
        assert MailingCounts.reconcile(mailing.pk, repair=False) is None, mailing  # minutes, texts too
        sent = mailing.messages.filter(status=MessageStatus.SENT).select_related("sent_text")
        assert stats.sms_sent_of(mailing) == sum(m.sent_text.parts for m in sent), mailing
        assert mailing.created_at <= mailing.start_at < mailing.end_at, mailing
        if mailing.state == MailingState.FINISHED:
            assert counts["sent"] and not counts["pending"], mailing
            assert mailing.start_at <= mailing.started_at < mailing.finished_at <= mailing.end_at, mailing
        elif mailing.state == MailingState.CANCELLED:
            assert mailing.created_at <= mailing.finished_at, mailing
        else:
            assert mailing.started_at is None and mailing.finished_at is None, mailing
        for message in sent:
            assert mailing.started_at <= message.sent_at <= mailing.finished_at, message
            assert message.attempts >= 1 and not message.last_error, message
        for message in mailing.messages.select_related("client"):
            assert message.created_at == mailing.started_at, message  # the audience, resolved at the start
            assert message.client.created_at < message.created_at, message
            assert (message.sent_text_id is not None) == (message.attempts > 0), message
            assert (message.status == MessageStatus.SENT) == (message.sent_at is not None), message
            assert message.status == MessageStatus.SENT or message.last_error, message  # says why
        # The audit log tells the same story, in order.
        entries = list(
            AuditEntry.objects.filter(object_type="mailing", object_id=str(mailing.pk)).order_by("at", "id")
        )
        expected = {
            MailingState.FINISHED: ["created", "started", "finished"],
            MailingState.CANCELLED: ["created", "cancelled"],
            MailingState.SCHEDULED: ["created"],
        }[mailing.state]
        assert [e.action for e in entries] == expected, mailing
        assert entries[0].at == mailing.created_at
        assert entries[-1].at == (mailing.finished_at or mailing.created_at)


def test_seeded_texts_and_tags_are_russian_and_clients_live_across_russia():
    call_command("seed_demo", clients=400, verbosity=0)
    tags = set(Client.objects.values_list("tag", flat=True))
    assert {"vip", "новые", "москва", "лояльные"} <= tags and not tags & {"retail", "new", "loyal"}
    zones = Client.objects.values_list("timezone", flat=True)
    assert all(zone.startswith(("Europe/", "Asia/")) for zone in zones)
    assert {"Europe/Moscow", "Asia/Kamchatka", "Europe/Kaliningrad"} <= set(zones)
    assert zones.filter(timezone="Europe/Moscow").count() > len(zones) / 3
    for mailing in Mailing.objects.all():
        assert any("а" <= c <= "я" for c in mailing.text.lower()), mailing.text
        mailing.full_clean()


def test_a_demo_database_of_an_earlier_version_is_brought_up_to_date():
    call_command("seed_demo", clients=50, no_mailings=True, verbosity=0)
    Client.objects.filter(pk__in=Client.objects.order_by("id")[:10].values("pk")).update(
        tag="loyal", timezone="America/New_York"
    )
    old = Mailing.objects.create(
        text="Weekend sale: -20% on everything.",
        start_at=timezone.now() - timedelta(days=2),
        end_at=timezone.now() - timedelta(days=1),
    )
    call_command("seed_demo", clients=50, verbosity=0)
    assert not Mailing.objects.filter(pk=old.pk).exists()
    assert not Client.objects.filter(tag="loyal").exists()
    assert not Client.objects.filter(timezone="America/New_York").exists()
    assert Client.objects.filter(tag="лояльные").count() >= 10
