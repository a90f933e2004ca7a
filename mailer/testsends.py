"""Test sends: a text sent now to one to five phones a user types, to see it on a real handset.

The web request only records the wish (`queue`): the web UI never waits on the gateway. A sender
process takes it at its next loop (`run_due`, within a fraction of a second) and sends it through
its own gateway client, so a test send goes out exactly as a mailing's messages do, and it
honours the same stops: a refused token or an open breaker refuses it with the reason. The answers
are kept on the TestSend row and logged; nothing of it counts in a mailing's statistics, and its
gateway message ids are apart from the messages' (TestSend.ID_BASE).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import hash_token
from mailer import sms
from mailer.models import (
    AuditEntry,
    GatewayState,
    TestSend,
    TestSendState,
    normalize_phone,
    parts_problem,
    phone_problem,
)
from mailer.sending import Outbound

logger = logging.getLogger("mailer.gateway")

# A sender stopped mid-send: after this, the send is reported as cut short (never sent again).
LEASE = timedelta(seconds=60)
# A test send waits at most this long for its answers, whatever MAILER_REQUEST_TIMEOUT says.
TIMEOUT = 10.0


class Refused(Exception):
    """The test send can't go: bad phones, a text over the cap, or the gateway's stop."""


def parse_phones(raw: str) -> list[str]:
    """The phones a user typed, separated by commas, semicolons or lines, written as people write
    them (+7 916 123-45-67, 8 (916) ...): each as 7XXXXXXXXXX, once. Refused with the reason."""
    phones: list[str] = []
    for item in re.split(r"[,;\n]", raw[:1000]):
        if not item.strip():
            continue
        digits = normalize_phone(item)
        if problem := phone_problem(digits):
            raise Refused(_("%(phone)s: %(problem)s") % {"phone": item.strip()[:20], "problem": problem})
        if digits not in phones:
            phones.append(digits)
    if not phones:
        raise Refused(_("Type one to %(n)s phones.") % {"n": TestSend.MAX_PHONES})
    if len(phones) > TestSend.MAX_PHONES:
        raise Refused(
            ngettext("At most %(n)s phone per test.", "At most %(n)s phones per test.", TestSend.MAX_PHONES)
            % {"n": TestSend.MAX_PHONES}
        )
    return phones


def queue(text: str, raw_phones: str, user=None, mailing=None) -> TestSend:
    """Record a test send for a sender to take; refused at once when it could not go."""
    text = text.strip()
    if not text:
        raise Refused(_("Write the text first."))
    if problem := parts_problem(sms.measure(text)):
        raise Refused(problem)
    phones = parse_phones(raw_phones)
    if stop := GatewayState.get().stopped_because(timezone.now(), hash_token(settings.MAILER_PROVIDER_TOKEN)):
        raise Refused(_("Not sent: %(why)s") % {"why": stop})
    with transaction.atomic():
        test = TestSend.objects.create(text=text, phones=phones, created_by=user, mailing=mailing)
        AuditEntry.record(user, "test_sent", test, {"phones": [None, phones], "text": [None, text]})
    logger.info(
        "test_send_id=%s queued by %s to %s phones",
        test.pk,
        getattr(user, "username", "-"),
        len(phones),
        extra={"test_send_id": test.pk, "mailing_id": getattr(mailing, "pk", None)},
    )
    return test


def run_due(deliverer) -> int:
    """In a sender's loop: send the oldest queued test send, if any, on the sender's gateway
    client; returns how many test sends it took (0 or 1). A claim is one conditional UPDATE, so
    two senders never take the same one."""
    now = timezone.now()
    test = TestSend.objects.filter(state=TestSendState.QUEUED).order_by("id").only("id").first()
    if test is None:
        return 0
    taken = TestSend.objects.filter(pk=test.pk, state=TestSendState.QUEUED).update(
        state=TestSendState.SENDING, lease_until=now + LEASE
    )
    if not taken:
        return 0
    test.refresh_from_db()
    stop = GatewayState.get().stopped_because(now, deliverer.token_hash)
    if stop:
        _finish(test, TestSendState.REFUSED, [], _("Not sent: %(why)s") % {"why": stop})
        return 1
    timeout = min(deliverer.config.request_timeout, TIMEOUT)
    deadline = time.monotonic() + timeout + 1
    items = [
        Outbound(test.gateway_id(i), phone, test.text, timeout, deadline)
        for i, phone in enumerate(test.phones)
    ]
    sending = asyncio.run_coroutine_threadsafe(deliverer.gateway.send_many(items), deliverer.loop)
    results = sending.result(timeout + 5)
    answers = []
    for phone, result in zip(test.phones, results, strict=True):
        ok = result.error is None
        # The gateway's own words, in no language of ours: the page says what they mean.
        answer = f'HTTP 200 {{"code": 0}} in {result.seconds:.2f}s' if ok else str(result.error)
        answers.append({"phone": phone, "ok": ok, "answer": answer})
        logger.log(
            logging.INFO if ok else logging.WARNING,
            "test_send_id=%s POST /v1/send/%s phone=%s -> %s",
            test.pk,
            result.message_id,
            phone,
            "sent" if ok else result.error,
            extra={"test_send_id": test.pk, "mailing_id": test.mailing_id},
        )
    _finish(test, TestSendState.DONE, answers, "")
    return 1


def _finish(test: TestSend, state: str, results: list[dict], problem: str) -> None:
    with transaction.atomic():
        TestSend.objects.filter(pk=test.pk).update(
            state=state, results=results, problem=problem[:500], finished_at=timezone.now(), lease_until=None
        )
    if problem:
        logger.warning("test_send_id=%s %s", test.pk, problem, extra={"test_send_id": test.pk})


def expire_stale(now=None) -> int:
    """Housekeeping: a test send whose sender died mid-send is reported, never sent again (the
    gateway may have taken it)."""
    now = now or timezone.now()
    return TestSend.objects.filter(state=TestSendState.SENDING, lease_until__lt=now).update(
        state=TestSendState.REFUSED,
        problem=_(
            "The sender stopped before the gateway answered; the messages may or may not have arrived."
        ),
        finished_at=now,
        lease_until=None,
    )
