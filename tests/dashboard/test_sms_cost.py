"""Length and cost before sending: the form counts the text as it is typed and multiplies by the
audience; the mailing's page, the statistics, their CSV and the daily report show the SMS parts."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from mailer import reports
from mailer.models import Message, MessageStatus
from tests.dashboard.conftest import HTMX

pytestmark = pytest.mark.django_db

CYR71 = "П" * 71  # UCS-2: two parts


def _estimate(client, **params) -> str:
    from urllib.parse import urlencode

    response = client.get(f"/mailings/audience/?{urlencode(params, doseq=True)}", **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def test_the_form_counts_the_text_and_the_sms_it_takes(viewer_client, make_client):
    for _ in range(3):
        make_client(tag="vip")
    make_client(tag="other")
    html = _estimate(viewer_client, text="Hello", filter_tags="vip")
    assert '<strong id="audience-count">3</strong>' in html
    assert '<strong id="sms-estimate">3</strong> SMS (1 per message)' in html
    # The length comes out of band, under the text area.
    assert '<div id="text-length" class="form-text mb-3" aria-live="polite" hx-swap-oob="true">' in html
    assert "5 characters · GSM-7 · <strong>1</strong> SMS part per message · 155 left in this part" in html

    html = _estimate(viewer_client, text=CYR71)
    assert "71 characters · UCS-2 · <strong>2</strong> SMS parts per message · 63 left" in html
    assert "Cyrillic or another character outside GSM-7" in html
    assert '<strong id="sms-estimate">8</strong> SMS (2 per message)' in html  # 4 clients


def test_the_form_counts_a_line_break_once(viewer_client):
    # Browsers send CR LF; the text is saved with LF, and counted so.
    assert "3 characters · GSM-7" in _estimate(viewer_client, text="a\r\nb")


def test_the_form_says_when_the_text_is_over_the_cap(viewer_client, manager_client, settings, now):
    settings.MAILER_MAX_PARTS = 1
    html = _estimate(viewer_client, text=CYR71)
    assert '<div class="text-danger">The text takes 2 SMS parts (71 characters, UCS-2); at most 1' in html
    response = manager_client.post(
        "/mailings/new/",
        {
            "text": CYR71,
            "start_at": timezone.localtime(now).strftime("%Y-%m-%dT%H:%M"),
            "end_at": timezone.localtime(now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "at most 1 are allowed (MAILER_MAX_PARTS)" in response.content.decode()


def _sent(mailing, client):
    Message.objects.create(
        mailing=mailing,
        client=client,
        status=MessageStatus.SENT,
        sent_at=timezone.now(),
        sent_text=mailing.current_text,
    )


def test_page_statistics_csv_and_report_show_the_parts(viewer_client, make_client, make_mailing, settings):
    mailing = make_mailing(text=CYR71)
    _sent(mailing, make_client())
    _sent(mailing, make_client())
    Message.objects.create(mailing=mailing, client=make_client(), status=MessageStatus.PENDING)

    detail = viewer_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert (
        '<dd class="col-sm-9" id="sms">71 characters, UCS-2: 2 parts per message; '
        "≈ 6 SMS for 3 messages, 4 sent</dd>"
    ) in detail

    row = viewer_client.get("/statistics/", **HTMX).content.decode().split(CYR71[:40])[1].split("</tr>")[0]
    cells = [c.split(">")[-1] for c in row.split("</td>")]
    assert cells[10:15] == [
        "66.7 %",
        "0",
        "0",
        "2",
        "4",
    ]  # delivered, no consent, cap expired, parts, SMS sent
    totals = viewer_client.get("/statistics/totals/", **HTMX).content.decode()
    assert '<div class="small text-body-secondary">SMS sent</div><strong>4</strong>' in totals

    content = b"".join(viewer_client.get("/statistics/mailings.csv").streaming_content).decode()
    [exported] = list(csv.DictReader(io.StringIO(content.lstrip("\ufeff"))))
    assert (exported["SMS parts"], exported["SMS sent"]) == ("2", "4")

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mailing.started_at = timezone.now() - timedelta(minutes=5)
    mailing.save()
    reports.send(timezone.now() - timedelta(hours=24), timezone.now(), ["ops@example.com"])
    [email] = mail.outbox
    assert "2 SMS parts per message, 4 SMS sent" in email.body
    assert "; 4 SMS sent" in email.body.split("All 1 mailings")[1]
    [(_, attached, _), _xlsx] = email.attachments
    [reported] = list(csv.DictReader(io.StringIO(attached.lstrip("\ufeff"))))
    assert (reported["SMS parts"], reported["SMS sent"]) == ("2", "4")


def test_typing_the_text_counts_no_clients_again(viewer_client, make_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        make_client(tag="vip")
    first = _estimate(viewer_client, text="Hi", filter_tags="vip")
    assert '<input type="hidden" name="audience_key" value="vip|#|#|advertising">' in first
    assert '<input type="hidden" name="audience_count" value="3">' in first
    # The page sends the counts back with the next keystroke: the same filter is not counted again.
    with CaptureQueriesContext(connection) as queries:
        again = _estimate(
            viewer_client,
            text="П" * 71,
            filter_tags="vip",
            audience_key="vip|#|#|advertising",
            audience_count="3",
            stop_list_count="0",
            no_consent_count="0",
            undeliverable_count="0",
            capped_count="0",
        )
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert '<strong id="sms-estimate">6</strong>' in again
    # Another filter is counted.
    other = _estimate(viewer_client, text="Hi", audience_key="vip|#|#|advertising", audience_count="3")
    assert (
        '<strong id="audience-count">3</strong>' in other
        and 'name="audience_key" value="#|#|advertising"' in other
    )
