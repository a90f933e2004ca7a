"""Test sends: a text sent now to one to five phones a user types, to see it on a real handset.

The web request only records the wish (`queue`): the web UI never waits on the gateway. A sender
process takes it at its next loop (`run_due`, within a fraction of a second) and sends it through
its own gateway client, so a test send goes out exactly as a mailing's messages do, under the same
rules: the stop list (a phone on it is refused, saying why), the rate limit (a test takes send
slots like any message), a refused token or an open breaker (refused with the reason). A user may
test at most MAILER_TEST_SEND_LIMIT phones an hour. A sender has at most one test send in flight
and never waits for its answers, so a flood of tests never holds up a mailing's rounds. The
answers are kept on the TestSend row and logged; nothing of it counts in a mailing's statistics,
and its gateway message ids are apart from the messages' (TestSend.ID_BASE).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import TimeoutError
from datetime import datetime, timedelta
from itertools import accumulate

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import hash_token
from engine.sending import Outbound
from mailer import sms, texts
from mailer.models import (
    AuditEntry,
    Client,
    GatewayState,
    StopEntry,
    TestSend,
    TestSendState,
    normalize_phone,
    parts_problem,
    phone_problem,
    variables,
)

logger = logging.getLogger("mailer.testsends")

# A sender stopped mid-send: after this, the send is reported as cut short (never sent again).
LEASE = timedelta(seconds=60)
# A test send waits at most this long for its answers, whatever MAILER_REQUEST_TIMEOUT says.
TIMEOUT = 10.0
# MAILER_TEST_SEND_LIMIT counts the phones a user tested in this much time.
QUOTA_WINDOW = timedelta(hours=1)


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


def stop_listed(phones: list[str]) -> dict[str, str]:
    """The phones on the stop list, each with why, for a person to read."""
    entries = StopEntry.objects.standing().filter(phone__in=phones)
    return {
        e.phone: _("%(phone)s is on the stop list since %(date)s%(reason)s: no test is sent to it.")
        % {
            "phone": e.phone,
            "date": formats.date_format(timezone.localtime(e.created_at), "SHORT_DATE_FORMAT"),
            "reason": f" ({e.reason})" if e.reason else "",
        }
        for e in entries
    }


def quota_problem(user, phones: int, now: datetime) -> str | None:
    """Why `user` may not test `phones` more phones now (MAILER_TEST_SEND_LIMIT an hour), saying
    when they may, or None. Test sends refused before anything went out do not count."""
    limit = settings.MAILER_TEST_SEND_LIMIT
    if limit == 0 or user is None:
        return None
    recent = list(
        TestSend.objects.filter(created_by=user, created_at__gt=now - QUOTA_WINDOW)
        .exclude(state=TestSendState.REFUSED, results=[])
        .order_by("created_at")
        .values_list("created_at", "phones")
    )
    used = sum(len(p) for _at, p in recent)
    if used + phones <= limit:
        return None
    if phones > limit:
        return ngettext(
            "You may test at most %(limit)s phone an hour.",
            "You may test at most %(limit)s phones an hour.",
            limit,
        ) % {"limit": limit}
    # The next test is possible once enough of the oldest ones have left the hour.
    freed = accumulate(len(p) for _at, p in recent)
    at = next(at for (at, _p), total in zip(recent, freed, strict=True) if total >= used + phones - limit)
    when = formats.time_format(timezone.localtime(at + QUOTA_WINDOW), "H:i")
    return ngettext(
        "You have tested %(used)s of %(limit)s phones this hour; the next test is possible at %(time)s.",
        "You have tested %(used)s of %(limit)s phones this hour; the next test is possible at %(time)s.",
        limit,
    ) % {"used": used, "limit": limit, "time": when}


def queue(text: str, raw_phones: str, user=None, mailing=None) -> TestSend:
    """Record a test send for a sender to take; refused at once when it could not go."""
    text = text.strip()
    if not text:
        raise Refused(_("Write the text first."))
    template = texts.Template.parse(text)
    if problems := template.problems(variables()):
        raise Refused(" ".join(problems))
    if problem := parts_problem(sms.measure(template.as_written())):
        raise Refused(problem)
    phones = parse_phones(raw_phones)
    if stopped := stop_listed(phones):
        raise Refused(" ".join(stopped[p] for p in phones if p in stopped))
    now = timezone.now()
    if stop := GatewayState.get().stopped_because(now, hash_token(settings.MAILER_PROVIDER_TOKEN)):
        raise Refused(_("Not sent: %(why)s") % {"why": stop})
    with transaction.atomic():
        if user is not None:
            # One test at a time per user, so that two quick clicks can't both pass the quota.
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if problem := quota_problem(user, len(phones), now):
            raise Refused(problem)
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


def personal_texts(text: str, phones: list[str]) -> dict[str, str]:
    """The text each phone gets: of a personal text (variables), the client's own where the phone
    is a client's and they have the values, else the text as written (each variable as its
    fallback, or nothing)."""
    template = texts.Template.parse(text)
    if not template.is_personal:
        return dict.fromkeys(phones, text)
    known = {
        phone: template.render(texts.values_of(name, attributes))
        for phone, name, attributes in Client.objects.filter(phone__in=phones).values_list(
            "phone", "name", "attributes"
        )
    }
    return {phone: known.get(phone) or template.as_written() for phone in phones}


def run_due(deliverer) -> int:
    """In a sender's loop: record the answers of this sender's test send in flight once they are
    in, else take the oldest queued one, if any, and send it off on the sender's gateway client
    without waiting. Returns how many it took (0 or 1). A claim is one conditional UPDATE, so two
    senders never take the same one."""
    if not collect(deliverer):
        return 0
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
    # A phone put on the stop list since the test was queued gets nothing either.
    stopped = stop_listed(test.phones)
    timeout = min(deliverer.config.request_timeout, TIMEOUT)
    own = personal_texts(test.text, test.phones)
    items = [
        Outbound(test.gateway_id(i), phone, own[phone], timeout, 0.0)
        for i, phone in enumerate(test.phones)
        if phone not in stopped
    ]
    if items and deliverer.config.rate_limit:
        deliverer.pace(items)  # send slots shared with the mailings' messages
    for item in items:
        item.deadline = max(item.not_before, time.monotonic()) + timeout + 1
    sending = asyncio.run_coroutine_threadsafe(deliverer.gateway.send_many(items), deliverer.loop)
    deliverer.test_in_flight = (test, stopped, sending)
    return 1


def collect(deliverer, wait: float = 0.0) -> bool:
    """Record the answers of the sender's test send in flight once they are in (waiting at most
    `wait` seconds); True when nothing is left in flight."""
    if deliverer.test_in_flight is None:
        return True
    test, stopped, sending = deliverer.test_in_flight
    try:
        results = sending.result(wait)
    except TimeoutError:
        return False
    except Exception as e:  # whatever went wrong, the user reads it and the sender goes on
        deliverer.test_in_flight = None
        logger.exception("test_send_id=%s failed", test.pk, extra={"test_send_id": test.pk})
        _finish(test, TestSendState.REFUSED, [], _("Not sent: %(why)s") % {"why": e})
        return True
    deliverer.test_in_flight = None
    by_id = {result.message_id: result for result in results}
    answers = []
    for i, phone in enumerate(test.phones):
        if phone in stopped:
            answers.append({"phone": phone, "ok": False, "answer": "", "why": stopped[phone]})
            continue
        result = by_id[test.gateway_id(i)]
        ok = result.error is None
        # The gateway's own words (none when it accepted): the page puts them in the reader's.
        answer = "" if ok else str(result.error)
        answers.append({"phone": phone, "ok": ok, "answer": answer, "seconds": round(result.seconds, 2)})
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
    return True


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
