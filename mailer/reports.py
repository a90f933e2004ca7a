"""The daily statistics email: the mailings processed in the last 24 hours, as HTML and text, with
the overview attached as CSV and .xlsx, in the report's language (LANGUAGE_CODE) and time zone
(TIME_ZONE): headers, states, dates and numbers as the dashboard's exports write them.

How it is scheduled: the django-q2 schedule "daily-report" (created by migration 0004) runs
`mailer.tasks.send_daily_report` every 15 minutes. `send_due_report` sends today's report once the
local time (TIME_ZONE) has passed MAILER_REPORT_TIME and no report went out yet for today, and
records it in `Report`. So a changed MAILER_REPORT_TIME applies at the next run without touching the
schedule, and a failed send leaves the row unsent: it is logged, and the next run tries again.

"Processed in the window" = the mailing had started before the window ended and had not finished
before it began (running, paused, or finished or cancelled during the window). Counts are the
mailing's totals when the report is built; `sent_in_period` counts only messages sent in the window.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from mailer import xlsxfiles
from mailer.csvfiles import csv_text
from mailer.formats import Locale
from mailer.models import Mailing, MailingKind, MailingState, MessageStatus, Report, labels
from mailer.stats import (
    STATUSES,
    annotated_counts,
    annotated_delivery,
    click_rate,
    delivery,
    totals,
    with_counts,
)

logger = logging.getLogger(__name__)

# A run that dies mid-send gives the row back after this long.
SEND_LEASE = timedelta(minutes=10)


def report_time() -> time:
    hour, minute = settings.MAILER_REPORT_TIME.split(":")
    return time(int(hour), int(minute))


def period_ending(day: date) -> tuple[datetime, datetime]:
    """The 24 hours before MAILER_REPORT_TIME on `day`, local time (TIME_ZONE)."""
    end = timezone.make_aware(datetime.combine(day, report_time()))
    return end - timedelta(hours=24), end


def mailings_in(start: datetime, end: datetime) -> QuerySet[Mailing]:
    return Mailing.objects.filter(started_at__lt=end).filter(
        Q(finished_at__isnull=True) | Q(finished_at__gte=start)
    )


@dataclass
class ReportContent:
    subject: str
    text: str
    html: str
    csv: str
    csv_name: str
    xlsx: bytes
    xlsx_name: str
    mailing_count: int


def build(start: datetime, end: datetime) -> ReportContent:
    """The report in the site's language (LANGUAGE_CODE), whoever builds it: the worker, a command."""
    with translation.override(settings.LANGUAGE_CODE):
        return _build(start, end)


def _build(start: datetime, end: datetime) -> ReportContent:
    base = mailings_in(start, end)
    rows = list(
        with_counts(base)
        .annotate(
            # From the per-minute counts: the period's bounds are whole minutes (local days).
            sent_in_period=Coalesce(
                Sum(
                    "sent_minutes__sent",
                    filter=Q(sent_minutes__minute__gte=start, sent_minutes__minute__lt=end),
                ),
                0,
            )
        )
        .order_by("start_at", "id")
    )
    overall = totals(base)
    overall["sent_in_period"] = sum(m.sent_in_period for m in rows)
    overall["sms_sent"] = sum(m.sms_sent for m in rows)
    overall["clicks"] = sum(m.clicks_count for m in rows)
    overall["clickers"] = sum(m.clickers_count for m in rows)
    overall["unsubscribed"] = sum(m.unsubscribed_count for m in rows)
    overall["click_rate"] = click_rate(overall["clickers"], overall["sent"])
    overall |= delivery(
        overall["sent"], sum(m.delivered_count for m in rows), sum(m.undelivered_count for m in rows)
    )
    for m in rows:
        m.click_rate = click_rate(m.clickers_count, m.sent_count)
        m.delivery = annotated_delivery(m)
    local_start, local_end = timezone.localtime(start), timezone.localtime(end)
    context = {
        "mailings": rows,
        "totals": overall,
        "statuses": STATUSES,
        "start": local_start,
        "end": local_end,
        "time_zone": settings.TIME_ZONE,
        "site_url": settings.SITE_URL,
    }

    states, kinds = labels(MailingState), labels(MailingKind)
    table = []  # the attachments' rows, for the CSV and the .xlsx alike
    for m in rows:
        counts = annotated_counts(m)
        table.append([
            m.pk, m.text, kinds[m.kind], states.get(m.state, m.state), m.start_at, m.end_at, m.started_at,
            m.finished_at, counts["total"], *(counts[status] for status in STATUSES),
            m.sent_in_period, m.sms_parts, m.sms_sent, m.clicks_count, m.clickers_count,
            m.unsubscribed_count, m.click_rate, *m.delivery.values(),
        ])  # fmt: skip

    header = columns()
    locale = Locale.current()  # in the report's language and TIME_ZONE (build's override)
    xlsx = io.BytesIO()
    xlsxfiles.write_xlsx(xlsx, _("Mailings"), header, table, locale, widths=[12, 60, 12, 14, *[20] * 4])
    return ReportContent(
        subject=_("mailer: daily report %(start)s - %(end)s")
        % {"start": f"{local_start:%Y-%m-%d %H:%M}", "end": f"{local_end:%Y-%m-%d %H:%M}"},
        text=render_to_string("mailer/report_email.txt", context),
        html=render_to_string("mailer/report_email.html", context),
        csv=csv_text(header, table, locale),
        csv_name=f"mailings-{local_end:%Y-%m-%d}.csv",
        xlsx=xlsx.getvalue(),
        xlsx_name=f"mailings-{local_end:%Y-%m-%d}.xlsx",
        mailing_count=len(rows),
    )


def columns() -> list[str]:
    """The attachments' header, in the active language."""
    return [
        _("Mailing no."), _("Text"), _("Kind"), _("State"), _("Start"), _("End"), _("Started at"),
        _("Finished at"), _("Total"), *(labels(MessageStatus)[status] for status in STATUSES),
        _("Accepted in period"), _("SMS parts"), _("SMS sent"), _("Clicks"), _("Clients who clicked"),
        _("Unsubscribed"), _("Click rate, %"), _("Delivered"), _("Not delivered"), _("No receipt yet"),
        _("Delivered, %"),
    ]  # fmt: skip


def send(start: datetime, end: datetime, recipients: list[str]) -> ReportContent:
    """Build and send the report for the window; raises what the mail backend raises."""
    content = build(start, end)
    message = EmailMultiAlternatives(content.subject, content.text, settings.DEFAULT_FROM_EMAIL, recipients)
    message.attach_alternative(content.html, "text/html")
    message.attach(content.csv_name, content.csv, "text/csv")
    message.attach(content.xlsx_name, content.xlsx, xlsxfiles.CONTENT_TYPE)
    message.send(fail_silently=False)
    return content


def send_due_report(now: datetime | None = None) -> str:
    """Send today's report if its time has come and it was not sent yet. Safe to run any time.

    A failed send is logged, recorded on the Report row (attempts, last_error) and re-raised, so the
    django-q2 task shows as failed; the row stays unsent and the next run retries.
    """
    now = now or timezone.now()
    recipients = settings.MAILER_REPORT_RECIPIENTS
    if not recipients:
        return "no recipients configured (MAILER_REPORT_RECIPIENTS)"
    local_now = timezone.localtime(now)
    if local_now.time() < report_time():
        return f"not yet: the report goes out after {settings.MAILER_REPORT_TIME}"
    today = local_now.date()
    report, _created = Report.objects.get_or_create(date=today)
    claimed = (
        Report.objects.filter(pk=report.pk, sent_at__isnull=True)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(locked_until=now + SEND_LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        return f"report {today} already sent or being sent"
    start, end = period_ending(today)
    try:
        content = send(start, end, recipients)
    except Exception as e:
        report.refresh_from_db()
        logger.exception(
            "daily report %s could not be sent (attempt %s); the next run retries", today, report.attempts
        )
        Report.objects.filter(pk=report.pk).update(
            last_error=f"{type(e).__name__}: {e}"[:500], locked_until=None
        )
        raise
    Report.objects.filter(pk=report.pk).update(
        sent_at=timezone.now(), recipients=",".join(recipients), last_error="", locked_until=None
    )
    logger.info(
        "daily report %s sent to %s (%s mailings)", today, ", ".join(recipients), content.mailing_count
    )
    return f"report {today} sent to {len(recipients)} recipients"
