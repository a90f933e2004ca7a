from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from mailer.models import AuditEntry, Client, Mailing, MailingError, MailingState, Message, MessageStatus

pytestmark = pytest.mark.django_db


class TestClient:
    @pytest.mark.parametrize("phone", ["79001234567", "79991234567"])
    def test_valid_phone(self, phone):
        Client(phone=phone, timezone="UTC").full_clean()

    @pytest.mark.parametrize(
        "phone",
        # The last one has Arabic-Indic digits, which \d would accept.
        [
            "89001234567",
            "7900123456",
            "790012345678",
            "7900123456a",
            "+79001234567",
            "",
            "79 0012345",
            "7900123456\u0663",
        ],
    )
    def test_bad_phone_is_refused(self, phone):
        with pytest.raises(ValidationError) as e:
            Client(phone=phone, timezone="UTC").full_clean()
        assert "phone" in e.value.message_dict

    def test_operator_code_outside_900_999_is_refused(self):
        with pytest.raises(ValidationError) as e:
            Client(phone="78001234567", timezone="UTC").full_clean()
        assert "800" in e.value.message_dict["phone"][0]

    def test_operator_code_is_derived_from_phone(self):
        client = Client.objects.create(phone="79261234567", timezone="UTC")
        assert client.operator_code == "926"
        client.phone = "79031234567"
        client.save()
        client.refresh_from_db()
        assert client.operator_code == "903"

    def test_phone_is_unique(self, make_client):
        make_client("79001112233")
        with pytest.raises(ValidationError):
            Client(phone="79001112233", timezone="UTC").full_clean()
        with pytest.raises(IntegrityError), transaction.atomic():
            Client.objects.create(phone="79001112233", timezone="UTC")

    def test_database_refuses_bad_phone_even_without_clean(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            Client.objects.create(phone="12345", timezone="UTC")

    @pytest.mark.parametrize("tz", ["Europe/Moscow", "Asia/Vladivostok", "UTC", "America/New_York"])
    def test_valid_timezone(self, tz):
        Client(phone="79001234567", timezone=tz).full_clean()

    @pytest.mark.parametrize("tz", ["Mars/Olympus", "MSK", "", "+03:00"])
    def test_unknown_timezone_is_refused(self, tz):
        with pytest.raises(ValidationError) as e:
            Client(phone="79001234567", timezone=tz).full_clean()
        assert "timezone" in e.value.message_dict


class TestMailing:
    def test_end_must_be_after_start(self, now):
        mailing = Mailing(text="x", start_at=now, end_at=now)
        with pytest.raises(ValidationError) as e:
            mailing.full_clean()
        assert "end_at" in e.value.message_dict
        with pytest.raises(IntegrityError), transaction.atomic():
            mailing.save()

    @pytest.mark.parametrize("start,end", [(time(9), None), (None, time(21))])
    def test_window_both_or_neither(self, now, start, end):
        mailing = Mailing(
            text="x", start_at=now, end_at=now + timedelta(hours=1), window_start=start, window_end=end
        )
        with pytest.raises(ValidationError) as e:
            mailing.full_clean()
        assert {"window_start", "window_end"} & set(e.value.message_dict)
        with pytest.raises(IntegrityError), transaction.atomic():
            mailing.save()

    def test_window_may_cross_midnight(self, now):
        Mailing(
            text="x", start_at=now, end_at=now + timedelta(hours=1), window_start=time(22), window_end=time(6)
        ).full_clean()

    def test_empty_window_is_refused(self, now):
        with pytest.raises(ValidationError):
            Mailing(
                text="x",
                start_at=now,
                end_at=now + timedelta(hours=1),
                window_start=time(9),
                window_end=time(9),
            ).full_clean()

    @pytest.mark.parametrize("codes", [["800"], ["9001"], ["abc"], "900"])
    def test_bad_operator_codes_are_refused(self, now, codes):
        with pytest.raises(ValidationError) as e:
            Mailing(
                text="x", start_at=now, end_at=now + timedelta(hours=1), filter_operator_codes=codes
            ).full_clean()
        assert "filter_operator_codes" in e.value.message_dict

    def test_blank_tag_in_filter_is_refused(self, now):
        with pytest.raises(ValidationError):
            Mailing(text="x", start_at=now, end_at=now + timedelta(hours=1), filter_tags=[" "]).full_clean()


class TestMatchingClients:
    @pytest.fixture
    def clients(self, make_client):
        return {
            "a": make_client("79001000001", tag="vip"),
            "b": make_client("79001000002", tag="retail"),
            "c": make_client("79261000003", tag="vip"),
            "d": make_client("79261000004", tag=""),
        }

    @pytest.mark.parametrize(
        "tags,codes,expected",
        [
            ([], [], "abcd"),
            (["vip"], [], "ac"),
            ([], ["926"], "cd"),
            (["vip"], ["926"], "c"),
            (["vip", "retail"], ["900"], "ab"),
            (["nobody"], [], ""),
        ],
    )
    def test_filter(self, make_mailing, clients, tags, codes, expected):
        mailing = make_mailing(filter_tags=tags, filter_operator_codes=codes)
        got = set(mailing.matching_clients().values_list("id", flat=True))
        assert got == {clients[k].id for k in expected}


class TestMessage:
    def test_one_message_per_mailing_and_client(self, make_mailing, make_client):
        mailing, client = make_mailing(), make_client()
        Message.objects.create(mailing=mailing, client=client)
        with pytest.raises(IntegrityError), transaction.atomic():
            Message.objects.create(mailing=mailing, client=client)

    def test_deleting_a_client_keeps_its_history(self, make_mailing, make_client):
        mailing, client = make_mailing(), make_client()
        message = Message.objects.create(mailing=mailing, client=client, status=MessageStatus.SENT)
        client.delete()
        message.refresh_from_db()
        assert message.client is None and message.status == MessageStatus.SENT


class TestControl:
    def test_pause_resume_cancel(self, make_mailing, make_client):
        mailing = make_mailing(state=MailingState.RUNNING)
        pending = Message.objects.create(mailing=mailing, client=make_client())
        sent = Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.SENT)
        mailing.pause()
        assert mailing.state == MailingState.PAUSED
        mailing.resume()
        assert mailing.state == MailingState.SCHEDULED
        mailing.cancel()
        assert mailing.state == MailingState.CANCELLED and mailing.finished_at is not None
        pending.refresh_from_db()
        sent.refresh_from_db()
        assert pending.status == MessageStatus.CANCELLED
        assert sent.status == MessageStatus.SENT

    @pytest.mark.parametrize(
        "state,action",
        [
            (MailingState.FINISHED, "pause"),
            (MailingState.CANCELLED, "resume"),
            (MailingState.RUNNING, "resume"),
            (MailingState.FINISHED, "cancel"),
        ],
    )
    def test_refused_transitions(self, make_mailing, state, action):
        mailing = make_mailing(state=state)
        with pytest.raises(MailingError):
            getattr(mailing, action)()
        mailing.refresh_from_db()
        assert mailing.state == state

    # Written out, not read from Mailing.TRANSITIONS: the rule as the product promises it.
    S = MailingState
    MOVES = {
        "start": ({S.SCHEDULED}, S.RUNNING, "started"),
        "pause": ({S.SCHEDULED, S.RUNNING}, S.PAUSED, "paused"),
        "resume": ({S.PAUSED}, S.SCHEDULED, "resumed"),
        "cancel": ({S.SCHEDULED, S.RUNNING, S.PAUSED}, S.CANCELLED, "cancelled"),
        "finish": ({S.SCHEDULED, S.RUNNING, S.PAUSED}, S.FINISHED, "finished"),
    }

    @pytest.mark.parametrize("state", MailingState.values)
    @pytest.mark.parametrize("action", MOVES)
    def test_every_state_change_goes_by_the_rule_with_its_audit_entry(self, make_mailing, now, state, action):
        mailing = make_mailing(
            start_at=now - timedelta(hours=1), end_at=now + timedelta(hours=1), state=state
        )
        allowed, to, word = self.MOVES[action]
        if action == "start":
            changed = mailing.start(now)
        elif action == "finish":
            changed = mailing.finish(now + timedelta(hours=2))  # its end has passed, nothing pending
        else:
            try:
                getattr(mailing, action)(via="api")
                changed = True
            except MailingError:
                changed = False
        assert changed is (state in allowed)
        mailing.refresh_from_db()
        assert mailing.state == (to if changed else state)
        entries = list(AuditEntry.objects.values_list("action", "changes"))
        assert entries == ([(word, {"state": [state, to]})] if changed else [])
        if action in ("pause", "resume", "cancel"):
            assert getattr(Mailing(state=state), f"can_{action}") is (state in allowed)

    def test_the_engine_finishes_nothing_with_a_message_pending(self, make_mailing, make_client, now):
        mailing = make_mailing(start_at=now - timedelta(hours=1), end_at=now + timedelta(hours=1))
        assert mailing.start(now)
        Message.objects.create(mailing=mailing, client=make_client())
        assert not mailing.finish(now + timedelta(hours=2))
        assert mailing.state == MailingState.RUNNING

    def test_the_engine_starts_nothing_before_its_time(self, make_mailing, now):
        mailing = make_mailing(start_at=now + timedelta(minutes=1), end_at=now + timedelta(hours=1))
        assert not mailing.start(now)
        assert mailing.state == MailingState.SCHEDULED and mailing.started_at is None
        assert mailing.start(now + timedelta(minutes=1)) and mailing.started_at == now + timedelta(minutes=1)
