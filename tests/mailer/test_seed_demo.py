from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.roles import ADMIN, role_of
from mailer import stats
from mailer.models import Client, Mailing, MailingState, Message

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
    # Its SMS sent are its sent messages times their text's parts, as the engine would have kept.
    finished = Mailing.objects.get(state=MailingState.FINISHED)
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
