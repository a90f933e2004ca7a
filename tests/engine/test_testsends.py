"""Test sends: phones as people type them, the gateway's stops honoured, sent by a sender through
the real gateway stand-in (counted there), recorded, and never part of a mailing's statistics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from engine import testsends, worker
from mailer.models import GatewayState, MailingCounts, Message, StopEntry, TestSend, TestSendState
from tests.engine.conftest import TOKEN

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "typed,phones",
    [
        ("79161234567", ["79161234567"]),
        ("+7 916 123-45-67, 8 (926) 123 45 67", ["79161234567", "79261234567"]),
        ("79161234567;79161234567\n79031234567\n", ["79161234567", "79031234567"]),
    ],
)
def test_phones_as_people_type_them(typed, phones):
    assert testsends.parse_phones(typed) == phones


@pytest.mark.parametrize(
    "typed,why",
    [
        ("", "Type one to 5 phones."),
        (" , ;", "Type one to 5 phones."),
        ("7916123", "7916123: Phone must be 11 digits"),
        ("78001234567", "Operator code 800"),
        (",".join(f"7916000000{i}" for i in range(6)), "At most 5 phones per test."),
    ],
)
def test_phones_refused_with_the_reason(typed, why):
    with pytest.raises(testsends.Refused, match=why.replace("(", r"\(")):
        testsends.parse_phones(typed)


def test_the_gateway_s_stops_refuse_at_once(settings):
    settings.MAILER_PROVIDER_TOKEN = TOKEN
    state = GatewayState.get()
    state.breaker_open_until = timezone.now() + timedelta(seconds=30)
    state.save()
    with pytest.raises(testsends.Refused, match="sending is paused until"):
        testsends.queue("Hello", "79161234567")
    state.breaker_open_until = None
    state.auth_error, state.auth_failed_token = "HTTP 401: token refused", testsends.hash_token(TOKEN)
    state.save()
    with pytest.raises(testsends.Refused, match="the gateway refused our token"):
        testsends.queue("Hello", "79161234567")
    assert not TestSend.objects.exists()


def test_a_text_over_the_cap_is_refused(settings):
    settings.MAILER_MAX_PARTS = 1
    with pytest.raises(testsends.Refused, match="at most 1 are allowed"):
        testsends.queue("П" * 71, "79161234567")


def test_a_sender_sends_it_through_the_gateway_and_records_the_answers(
    make_deliverer, provider, make_mailing, django_user_model
):
    mailing = make_mailing(text="Autumn sale")
    user = django_user_model.objects.create_user("tess")
    test = testsends.queue("Autumn sale", "79161234567, 79261234567", user=user, mailing=mailing)
    assert test.state == TestSendState.QUEUED and not provider.record.accepted
    deliverer = make_deliverer()
    assert testsends.run_due(deliverer) == 1
    assert testsends.collect(deliverer, wait=5)
    assert testsends.run_due(deliverer) == 0  # taken once
    test.refresh_from_db()
    assert test.state == TestSendState.DONE and test.finished_at and test.created_by == user
    assert [(r["phone"], r["ok"]) for r in test.results] == [("79161234567", True), ("79261234567", True)]
    assert test.results[0]["ok"] and test.results[0]["answer"] == "" and test.results[0]["seconds"] >= 0
    # At the gateway: once each, under ids apart from the messages', with the text.
    ids = [test.gateway_id(0), test.gateway_id(1)]
    assert dict(provider.record.accepted) == dict.fromkeys(ids, 1)
    assert all(i >= TestSend.ID_BASE for i in ids)
    assert {provider.record.phones[i] for i in ids} == {79161234567, 79261234567}
    assert provider.record.texts[ids[0]] == "Autumn sale"
    # Nothing of it is a message of the mailing, nor in its counts.
    assert not Message.objects.exists()
    assert MailingCounts.objects.get(mailing=mailing).as_dict()["total"] == 0


def test_a_stop_that_came_after_queueing_refuses_it_without_sending(make_deliverer, provider):
    test = testsends.queue("Hello", "79161234567")
    GatewayState.objects.filter(pk=1).update(breaker_open_until=timezone.now() + timedelta(seconds=30))
    testsends.run_due(make_deliverer())
    test.refresh_from_db()
    assert test.state == TestSendState.REFUSED and "sending is paused" in test.problem
    assert not provider.record.accepted


def test_a_refused_token_is_the_answer(make_deliverer, provider):
    test = testsends.queue("Hello", "79161234567")
    deliverer = make_deliverer(token="wrong-token")
    testsends.run_due(deliverer)
    testsends.collect(deliverer, wait=5)
    test.refresh_from_db()
    assert test.state == TestSendState.DONE
    [result] = test.results
    assert (result["ok"], result["answer"]) == (False, "auth: HTTP 401: token refused")


def test_the_sender_loop_takes_test_sends(make_deliverer, provider):
    test = testsends.queue("Hello", "79161234567")

    def done() -> bool:
        return TestSend.objects.filter(pk=test.pk, state=TestSendState.DONE).exists()

    deadline = timezone.now() + timedelta(seconds=20)

    class Until(worker.Stop):
        def __call__(self) -> bool:
            try:
                asyncio.get_running_loop()  # asked by the gateway mid-round: no database there
            except RuntimeError:
                self.requested = self.requested or done() or timezone.now() > deadline
            return self.requested

    worker.run_sender("h:1:ab/0", 0, Until(), make_deliverer())
    assert done() and provider.record.accepted[test.gateway_id(0)] == 1


def test_a_send_cut_short_by_a_dead_sender_is_reported_not_repeated():
    test = testsends.queue("Hello", "79161234567")
    TestSend.objects.filter(pk=test.pk).update(
        state=TestSendState.SENDING, lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert testsends.expire_stale() == 1
    test.refresh_from_db()
    assert test.state == TestSendState.REFUSED and "may or may not have arrived" in test.problem


def test_a_phone_on_the_stop_list_is_refused_saying_why():
    StopEntry.opt_out("79261234567", "ui", reason="asked by phone")
    with pytest.raises(testsends.Refused) as refused:
        testsends.queue("Hello", "79161234567, +7 926 123-45-67")
    assert "79261234567 is on the stop list since" in str(refused.value)
    assert "(asked by phone): no test is sent to it." in str(refused.value)
    assert "79161234567" not in str(refused.value)
    assert not TestSend.objects.exists()


def test_a_phone_that_opts_out_after_queueing_gets_nothing(make_deliverer, provider):
    test = testsends.queue("Hello", "79161234567, 79261234567")
    StopEntry.opt_out("79261234567", "api")
    deliverer = make_deliverer()
    testsends.run_due(deliverer)
    testsends.collect(deliverer, wait=5)
    test.refresh_from_db()
    assert [(r["phone"], r["ok"]) for r in test.results] == [("79161234567", True), ("79261234567", False)]
    assert "on the stop list" in test.results[1]["why"]
    assert dict(provider.record.accepted) == {test.gateway_id(0): 1}


def test_each_user_tests_at_most_the_limit_of_phones_an_hour(settings, django_user_model):
    settings.MAILER_TEST_SEND_LIMIT = 3
    tess, other = (django_user_model.objects.create_user(name) for name in ("tess", "other"))
    first = testsends.queue("Hello", "79161234567, 79261234567", user=tess)
    TestSend.objects.filter(pk=first.pk).update(created_at=first.created_at - timedelta(minutes=50))
    # Refused before anything went out: not counted.
    TestSend.objects.create(
        text="x", phones=["79031234567"] * 5, created_by=tess, state=TestSendState.REFUSED
    )
    testsends.queue("Hello", "79031234567", user=tess)

    with pytest.raises(testsends.Refused) as refused:
        testsends.queue("Hello", "79051234567", user=tess)

    when = timezone.localtime(first.created_at - timedelta(minutes=50) + timedelta(hours=1))
    assert str(refused.value) == (
        f"You have tested 3 of 3 phones this hour; the next test is possible at {when:%H:%M}."
    )
    testsends.queue("Hello", "79051234567", user=other)  # a quota of one's own
    with pytest.raises(testsends.Refused, match="at most 3 phones an hour"):
        testsends.queue("Hello", "79161234567, 79261234567, 79031234567, 79051234567", user=other)
    # An hour after the first test, its phones are free again.
    TestSend.objects.filter(pk=first.pk).update(created_at=first.created_at - timedelta(minutes=61))
    testsends.queue("Hello", "79051234567", user=tess)
    assert TestSend.objects.filter(created_by=tess).count() == 4


def test_a_test_takes_rate_slots_like_any_message(make_deliverer, provider):
    GatewayState.objects.update_or_create(pk=1, defaults={"rate_next_at": None})
    testsends.queue("Hello", "79161234567, 79261234567")
    deliverer = make_deliverer(rate_limit=2.0)
    before = timezone.now()

    testsends.run_due(deliverer)

    # Two slots at 2/s: the next message of any worker may leave a second later at the earliest.
    assert GatewayState.get().rate_next_at >= before + timedelta(seconds=1)
    assert testsends.collect(deliverer, wait=5)


def test_a_sender_never_waits_for_a_test_s_answers(make_deliverer, provider):
    provider.behaviour.latency = 1.0
    slow = testsends.queue("Hello", "79161234567")
    queued = testsends.queue("Hello", "79261234567")
    deliverer = make_deliverer()

    assert testsends.run_due(deliverer) == 1
    # Back before the gateway answered: the sender goes on with the mailings' rounds meanwhile.
    assert not testsends.collect(deliverer)
    assert TestSend.objects.get(pk=slow.pk).state == TestSendState.SENDING
    # One test in flight per sender: the next waits, whatever the flood.
    assert testsends.run_due(deliverer) == 0
    assert TestSend.objects.get(pk=queued.pk).state == TestSendState.QUEUED

    assert testsends.collect(deliverer, wait=5)
    assert TestSend.objects.get(pk=slow.pk).state == TestSendState.DONE
    assert testsends.run_due(deliverer) == 1
    assert testsends.collect(deliverer, wait=5)
    assert TestSend.objects.get(pk=queued.pk).state == TestSendState.DONE
