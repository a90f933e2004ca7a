"""A text's length as SMS (mailer.sms.measure), tested as a table, and where it is used: stored with
the mailing and each of its texts, the MAILER_MAX_PARTS cap on saving and in the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from engine.delivery import Claimed, decide
from mailer.models import ENGINE_REASONS, TOO_MANY_PARTS_WHY, Mailing, MailingState, MessageStatus
from mailer.sms import GSM7, UCS2, measure

CYR = "П"  # any Cyrillic letter makes the text UCS-2
EMOJI = "😀"  # outside the BMP: two UCS-2 units


@pytest.mark.parametrize(
    "text,encoding,characters,units,parts,free",
    [
        ("", GSM7, 0, 0, 0, 160),
        ("Hello", GSM7, 5, 5, 1, 155),
        ("a" * 160, GSM7, 160, 160, 1, 0),
        ("a" * 161, GSM7, 161, 161, 2, 145),  # 153 + 8
        ("a" * 306, GSM7, 306, 306, 2, 0),
        ("a" * 307, GSM7, 307, 307, 3, 152),
        ("Line 1\nLine 2 @ £5 ¿Qué? Ça, Ø", GSM7, 30, 30, 1, 130),  # all in the default alphabet
        # Extension characters take two septets...
        ("[x]", GSM7, 3, 5, 1, 155),
        ("€" * 80, GSM7, 80, 160, 1, 0),
        ("€" * 81, GSM7, 81, 162, 2, 143),  # 76 + 5 characters: 152 + 10 septets
        # ...and are never split from their escape: the first part holds 152 septets, not 153.
        ("a" * 152 + "€" + "a" * 10, GSM7, 163, 164, 2, 141),
        ("a" * 152 + "€", GSM7, 153, 154, 1, 6),  # one part holds 160
        # One character outside GSM-7 makes the whole text UCS-2.
        ("Привет!", UCS2, 7, 7, 1, 63),
        (CYR * 70, UCS2, 70, 70, 1, 0),
        (CYR * 71, UCS2, 71, 71, 2, 63),  # 67 + 4
        (CYR * 134, UCS2, 134, 134, 2, 0),
        (CYR * 135, UCS2, 135, 135, 3, 66),
        ("a" * 160 + CYR, UCS2, 161, 161, 3, 40),  # 67 + 67 + 27
        ("naïve", UCS2, 5, 5, 1, 65),  # ï is not in GSM-7
        ("`", UCS2, 1, 1, 1, 69),
        # Outside the BMP: two units, never split between parts.
        (EMOJI * 35, UCS2, 35, 70, 1, 0),
        (EMOJI * 36, UCS2, 36, 72, 2, 61),  # 33 + 3 emoji: 66 + 6 units
        # Cyrillic plus an extension character: UCS-2, where € is one unit.
        ("Цена 5€", UCS2, 7, 7, 1, 63),
    ],
)
def test_measure(text, encoding, characters, units, parts, free):
    length = measure(text)
    assert (length.encoding, length.characters, length.units, length.parts, length.free) == (
        encoding,
        characters,
        units,
        parts,
        free,
    )


@pytest.mark.django_db
def test_stored_with_the_mailing_and_each_of_its_texts(make_mailing):
    mailing = make_mailing(text="Hello")
    assert (mailing.sms_encoding, mailing.sms_parts, mailing.current_text.parts) == (GSM7, 1, 1)
    mailing.text = CYR * 71
    mailing.save()
    mailing.refresh_from_db()
    assert (mailing.sms_encoding, mailing.sms_parts) == (UCS2, 2)
    assert [(t.number, t.parts) for t in mailing.texts.order_by("number")] == [(1, 1), (2, 2)]


@pytest.mark.django_db
def test_max_parts_refuses_a_longer_text_on_saving(settings, now):
    settings.MAILER_MAX_PARTS = 2
    mailing = Mailing(text=CYR * 134, start_at=now, end_at=now + timedelta(hours=1))
    mailing.full_clean()  # two parts: allowed
    mailing.text = CYR * 135
    with pytest.raises(ValidationError) as error:
        mailing.full_clean()
    message = error.value.message_dict["text"][0]
    assert "3 SMS parts" in message and "135 characters, UCS-2" in message and "at most 2" in message
    settings.MAILER_MAX_PARTS = 0  # no cap
    mailing.full_clean()


def test_the_engine_does_not_send_a_text_over_the_cap():
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    msg = Claimed(7, 1, 3, 0, at, "", "79001234567", "UTC", None, consent_at=at)
    mailing = Mailing(
        id=1, text="x", sms_parts=3, state=MailingState.RUNNING, start_at=at, end_at=at + timedelta(hours=1)
    )
    assert decide(msg, mailing, at, max_parts=0) is None
    assert decide(msg, mailing, at, max_parts=3) is None
    refused = decide(msg, mailing, at, max_parts=2)
    assert refused.status == MessageStatus.FAILED
    # A reason of the engine's, kept in English and shown in the reader's language (ENGINE_REASONS);
    # the log line has the numbers.
    assert refused.fields["last_error"] == TOO_MANY_PARTS_WHY and TOO_MANY_PARTS_WHY in ENGINE_REASONS
    assert "3 SMS parts, over MAILER_MAX_PARTS (2)" in refused.event
