from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.models import Client, Mailing
from tests.engine.conftest import _fresh_provider_state, drain, make_deliverer, provider  # noqa: F401

TOKEN = "receipts-token"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture
def receipts_on(settings):
    settings.MAILER_RECEIPT_TOKEN = TOKEN
    return settings


@pytest.fixture
def sent(make_client, make_deliverer, provider, now, receipts_on):  # noqa: F811
    """A mailing sent to four clients (two of operator 900, two of 912): (mailing, its message ids by phone)."""

    def send(
        text: str = "Hello", phones: tuple = ("79000000001", "79000000002", "79120000001", "79120000002")
    ):
        for phone in phones:
            if not Client.objects.filter(phone=phone).exists():
                make_client(phone=phone)
        mailing = Mailing.objects.create(text=text, start_at=now, end_at=now + timedelta(hours=1))
        drain(make_deliverer(), now)
        return mailing, dict(mailing.messages.values_list("client__phone", "id"))

    return send
