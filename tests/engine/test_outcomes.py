"""The gateway's answer for one message as the row's new state: a pure function, tested as one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.delivery import Claimed, outcome, request_label
from engine.sending import ErrorKind, GatewayError
from mailer.models import Mailing, MessageStatus
from tests.engine.conftest import config

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CONF = config(retry_base=2.0, retry_max=300.0, max_attempts=10)


def claimed(attempts: int = 0) -> Claimed:
    return Claimed(7, 1, 3, attempts, AT, "", "79001234567", "UTC", None, consent_at=AT)


def mailing(hours: float = 1) -> Mailing:
    return Mailing(id=1, text="hi", start_at=AT, end_at=AT + timedelta(hours=hours), current_text_id=5)


def test_success_is_sent_at_the_answer():
    result = outcome(claimed(2), None, AT, mailing(), CONF, healthy=True, seconds=0.1)
    assert result.status == MessageStatus.SENT
    assert result.fields == {"status": "sent", "sent_at": AT, "attempts": 3, "last_error": ""}


@pytest.mark.parametrize(
    "kind", [ErrorKind.HTTP_5XX, ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.BAD_ANSWER]
)
def test_a_random_failure_of_a_healthy_gateway_is_retried_soon_whatever_the_attempts(kind):
    for attempts in (0, 5, 8):
        result = outcome(claimed(attempts), GatewayError(kind, "x"), AT, mailing(), CONF, True, 0.1)
        assert result.status is None and result.fields["attempts"] == attempts + 1
        assert timedelta(seconds=1) <= result.fields["next_attempt_at"] - AT <= timedelta(seconds=2)


def test_failures_of_a_gateway_that_is_mostly_failing_back_off_by_attempts():
    result = outcome(claimed(6), GatewayError(ErrorKind.HTTP_5XX, "x"), AT, mailing(), CONF, False, 0.1)
    # 7th attempt: 2 * 2**6 = 128 s, equal jitter: 64..128 s.
    assert timedelta(seconds=64) <= result.fields["next_attempt_at"] - AT <= timedelta(seconds=128)


def test_retry_after_is_honoured_even_when_healthy():
    error = GatewayError(ErrorKind.HTTP_429, "x", retry_after=30)
    result = outcome(claimed(), error, AT, mailing(), CONF, True, 0.1)
    assert result.fields["next_attempt_at"] - AT == timedelta(seconds=30)


def test_last_attempt_fails_and_a_retry_after_the_end_expires():
    last = outcome(claimed(9), GatewayError(ErrorKind.HTTP_5XX, "x"), AT, mailing(), CONF, True, 0.1)
    assert last.status == MessageStatus.FAILED and last.fields["sent_text_id"] == 5
    late = outcome(
        claimed(), GatewayError(ErrorKind.HTTP_5XX, "x"), AT, mailing(hours=0.0003), CONF, True, 0.1
    )
    assert late.status == MessageStatus.EXPIRED


@pytest.mark.parametrize(
    "kind,status,attempts,label",
    [
        (ErrorKind.HTTP_4XX, MessageStatus.FAILED, 1, "permanent"),
        (ErrorKind.AUTH, None, None, "auth"),  # not the message's fault: no attempt counted
        (ErrorKind.TOO_LATE, MessageStatus.EXPIRED, None, None),
        (ErrorKind.STOPPED, None, None, None),  # never left: released as it was
    ],
)
def test_other_kinds(kind, status, attempts, label):
    result = outcome(claimed(), GatewayError(kind, "x"), AT, mailing(), CONF, True, 0.1)
    assert result.status == status
    assert result.fields.get("attempts") == attempts
    assert request_label(GatewayError(kind, "x")) == label


@pytest.mark.django_db
def test_the_gateway_is_healthy_while_most_recent_requests_get_through():
    from mailer.models import GatewayState

    def note(sent: int, down: int) -> GatewayState:
        GatewayState.note_round(
            AT, sent=sent, down_failures=down, last_error="x" if down else "", auth_error="",
            token_hash="t", threshold=5, breaker_seconds=15,
        )  # fmt: skip
        return GatewayState.get()

    assert GatewayState.get().is_healthy()
    assert note(80, 20).is_healthy()  # 20% random 500s: a live gateway
    state = note(0, 150)
    assert not state.is_healthy() and state.recent_ok + state.recent_down <= GatewayState.WINDOW
    for _ in range(3):
        state = note(100, 0)
    assert state.is_healthy()  # it came back: the window forgets the outage
