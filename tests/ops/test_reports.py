from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone, translation
from django_q.models import Schedule
from openpyxl import load_workbook

from mailer import reports, tasks
from mailer.models import MailingState, Message, MessageStatus, Report

DAY = date(2026, 3, 10)


class FailingBackend:
    """An email backend whose server is down."""

    def __init__(self, **kwargs) -> None:
        pass

    def send_messages(self, messages) -> int:
        raise ConnectionRefusedError("SMTP server refused the connection")


@pytest.fixture
def report_settings(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAILER_REPORT_TIME = "08:00"
    settings.MAILER_REPORT_RECIPIENTS = ["ops@example.com", "boss@example.com"]
    settings.DEFAULT_FROM_EMAIL = "mailer@example.com"
    settings.TIME_ZONE = "UTC"
    return settings


@pytest.fixture
def known_mailings(db, make_client, make_mailing):
    """In the window 2026-03-09 08:00 - 2026-03-10 08:00 UTC: A finished in it, B still running.
    Left out: C finished before it, D not started."""
    start, end = reports.period_ending(DAY)
    clients = [make_client() for _ in range(4)]

    def mailing(text, started, finished, state):
        return make_mailing(
            text=text, start_at=started or end, end_at=end + timedelta(days=5),
            started_at=started, finished_at=finished, state=state,
        )  # fmt: skip

    a = mailing("Spring sale", start + timedelta(hours=1), start + timedelta(hours=5), MailingState.FINISHED)
    b = mailing('Loyalty, "gold" tier', start - timedelta(days=2), None, MailingState.RUNNING)
    c = mailing("Old news", start - timedelta(days=3), start - timedelta(hours=1), MailingState.FINISHED)
    d = mailing("Next week", None, None, MailingState.SCHEDULED)

    def message(m, client, status, sent_at=None):
        Message.objects.create(mailing=m, client=client, status=status, sent_at=sent_at)

    message(a, clients[0], MessageStatus.SENT, start + timedelta(hours=2))
    message(a, clients[1], MessageStatus.SENT, start + timedelta(hours=3))
    message(a, clients[2], MessageStatus.FAILED)
    message(b, clients[0], MessageStatus.SENT, start + timedelta(hours=4))
    message(b, clients[1], MessageStatus.SENT, start - timedelta(days=1))  # before the window
    message(b, clients[2], MessageStatus.PENDING)
    message(b, clients[3], MessageStatus.EXPIRED)
    message(c, clients[0], MessageStatus.SENT, start - timedelta(hours=2))
    message(d, clients[0], MessageStatus.PENDING)
    return a, b, c, d


def test_report_content_for_known_mailings(report_settings, known_mailings):
    a, b, _c, _d = known_mailings
    start, end = reports.period_ending(DAY)
    assert (start, end) == (datetime(2026, 3, 9, 8, tzinfo=UTC), datetime(2026, 3, 10, 8, tzinfo=UTC))

    reports.send(start, end, ["ops@example.com"])

    [email] = mail.outbox
    assert email.to == ["ops@example.com"]
    assert email.from_email == "mailer@example.com"
    assert email.subject == "mailer: daily report 2026-03-09 08:00 - 2026-03-10 08:00"
    # Plain text: one block per mailing in the window, then the totals.
    assert f"#{a.pk} Spring sale" in email.body
    assert f"#{b.pk} Loyalty" in email.body
    assert "Old news" not in email.body and "Next week" not in email.body
    assert (
        "total 3: accepted by the gateway 2, not accepted 1, waiting 0, expired 0, cancelled 0; accepted in period 2"
        in email.body
    )
    assert (
        "total 4: accepted by the gateway 2, not accepted 0, waiting 1, expired 1, cancelled 0; accepted in period 1"
        in email.body
    )
    assert (
        "All 2 mailings: total 7: accepted by the gateway 4, not accepted 1, waiting 1, expired 1, cancelled 0; accepted in period 3"
        in email.body
    )
    # HTML: the overview table, text escaped.
    [(html, mimetype)] = email.alternatives
    assert mimetype == "text/html"
    assert (
        f"<tr><td>{a.pk}</td><td>Spring sale</td><td>advertising</td><td>finished</td><td>3</td><td>2</td><td>1</td>"
        in html
    )
    assert "Loyalty, &quot;gold&quot; tier" in html
    assert (
        '<th colspan="4">All 2 mailings</th><th>7</th><th>4</th><th>1</th><th>1</th><th>1</th><th>0</th><th>3</th>'
        in html
    )
    # CSV: a header and one row per mailing, quoted properly, in the report's language (en here).
    [(name, content, csv_type), (xlsx_name, xlsx, xlsx_type)] = email.attachments
    assert (name, csv_type) == ("mailings-2026-03-10.csv", "text/csv")
    assert content.startswith("\ufeff")  # Excel reads it as UTF-8
    rows = list(csv.DictReader(io.StringIO(content[1:])))
    assert [int(r["Mailing no."]) for r in rows] == [b.pk, a.pk]  # by start
    by_id = {int(r["Mailing no."]): r for r in rows}
    assert by_id[b.pk]["Text"] == 'Loyalty, "gold" tier'
    assert {k: by_id[a.pk][k] for k in ("State", "Total", "Accepted by the gateway", "Not accepted", "Waiting", "Accepted in period")} == {
        "State": "Finished", "Total": "3", "Accepted by the gateway": "2", "Not accepted": "1", "Waiting": "0", "Accepted in period": "2",
    }  # fmt: skip
    assert by_id[a.pk]["Finished at"] == "2026-03-09 13:00:00"
    assert by_id[b.pk]["Expired"] == "1" and by_id[b.pk]["Accepted in period"] == "1"
    # The same table as .xlsx, with real date and number cells.
    assert (xlsx_name, xlsx_type) == (
        "mailings-2026-03-10.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    sheet = load_workbook(io.BytesIO(xlsx)).worksheets[0]
    header, *cells = sheet.iter_rows(values_only=True)
    assert list(header) == next(csv.reader(io.StringIO(content[1:])))
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in cells}
    assert (
        by_id[a.pk]["Finished at"] == datetime(2026, 3, 9, 13, 0)
        and by_id[a.pk]["Accepted by the gateway"] == 2
    )


def test_the_report_s_files_follow_its_language_and_time_zone(report_settings, known_mailings):
    a, _b, _c, _d = known_mailings
    report_settings.LANGUAGE_CODE = "ru"
    report_settings.TIME_ZONE = "Europe/Moscow"
    content = reports.build(*reports.period_ending(DAY))
    rows = list(csv.DictReader(io.StringIO(content.csv[1:]), delimiter=";"))
    row = next(r for r in rows if r["№ рассылки"] == str(a.pk))
    assert row["Состояние"] == "Завершена" and row["Принято шлюзом"] == "2"
    assert row["Время завершения"] == "09.03.2026 16:00:00"  # 13:00 UTC in Moscow


def test_empty_period_says_so(report_settings, db):
    reports.send(*reports.period_ending(DAY), ["ops@example.com"])
    assert "No mailing was processed in this period." in mail.outbox[0].body
    with translation.override("en"):
        header = reports.columns()
    [only] = mail.outbox[0].attachments[0][1].removeprefix("\ufeff").splitlines()
    assert next(csv.reader([only])) == header  # "Click rate, %" quoted for its comma


def test_schedule_exists_after_migrate(db):
    schedule = Schedule.objects.get(name="daily-report")
    assert schedule.func == "mailer.tasks.send_daily_report"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 15, -1)


def test_due_report_goes_out_once_after_the_configured_local_time(report_settings, known_mailings):
    report_settings.TIME_ZONE = "Asia/Yekaterinburg"  # UTC+5, no DST
    before = datetime(2026, 3, 10, 2, 59, tzinfo=UTC)  # 07:59 local
    after = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 08:00 local

    assert reports.send_due_report(before).startswith("not yet")
    assert mail.outbox == [] and not Report.objects.exists()

    assert reports.send_due_report(after) == "report 2026-03-10 sent to 2 recipients"
    assert reports.send_due_report(after + timedelta(minutes=15)).endswith("already sent or being sent")
    [email] = mail.outbox
    assert email.to == ["ops@example.com", "boss@example.com"]
    # The window is the 24 hours before 08:00 local on that day.
    assert email.subject == "mailer: daily report 2026-03-09 08:00 - 2026-03-10 08:00"
    report = Report.objects.get()
    assert (report.date, report.attempts, report.recipients) == (DAY, 1, "ops@example.com,boss@example.com")
    assert report.sent_at is not None and report.locked_until is None


def test_a_changed_report_time_takes_effect_without_a_new_schedule(report_settings, db):
    at_nine = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    report_settings.MAILER_REPORT_TIME = "09:30"
    assert reports.send_due_report(at_nine).startswith("not yet")
    report_settings.MAILER_REPORT_TIME = "08:45"
    assert reports.send_due_report(at_nine).startswith("report 2026-03-10 sent")


def test_no_recipients_sends_nothing(report_settings, db):
    report_settings.MAILER_REPORT_RECIPIENTS = []
    assert "no recipients" in reports.send_due_report(datetime(2026, 3, 10, 9, tzinfo=UTC))
    assert mail.outbox == [] and not Report.objects.exists()


def test_failed_send_is_logged_kept_unsent_and_retried(report_settings, db, caplog):
    at_nine = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    report_settings.EMAIL_BACKEND = f"{__name__}.FailingBackend"

    with caplog.at_level(logging.ERROR, logger="mailer.reports"), pytest.raises(ConnectionRefusedError):
        reports.send_due_report(at_nine)

    report = Report.objects.get()
    assert report.sent_at is None and report.attempts == 1 and report.locked_until is None
    assert report.last_error == "ConnectionRefusedError: SMTP server refused the connection"
    [record] = caplog.records
    assert (
        record.getMessage() == "daily report 2026-03-10 could not be sent (attempt 1); the next run retries"
    )
    assert record.exc_info is not None

    report_settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert reports.send_due_report(at_nine + timedelta(minutes=15)).startswith("report 2026-03-10 sent")
    report.refresh_from_db()
    assert report.sent_at is not None and report.attempts == 2 and report.last_error == ""
    assert len(mail.outbox) == 1


def test_a_run_holding_the_report_keeps_a_second_run_out(report_settings, db):
    at_nine = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    Report.objects.create(date=DAY, locked_until=at_nine + timedelta(minutes=5))
    assert reports.send_due_report(at_nine).endswith("already sent or being sent")
    assert mail.outbox == []
    # A lease that ran out (the holder died) is taken over.
    assert reports.send_due_report(at_nine + timedelta(minutes=6)).startswith("report 2026-03-10 sent")


def test_the_task_sends_the_due_report(report_settings, db):
    report_settings.MAILER_REPORT_TIME = "00:00"  # always passed
    assert tasks.send_daily_report().endswith("sent to 2 recipients")
    assert len(mail.outbox) == 1


def test_send_report_command(report_settings, known_mailings, capsys):
    call_command(
        "send_report", "--to", "a@example.com,b@example.com", "--to", "c@example.com", "--date", "2026-03-10"
    )
    [email] = mail.outbox
    assert email.to == ["a@example.com", "b@example.com", "c@example.com"]
    assert email.subject == "mailer: daily report 2026-03-09 08:00 - 2026-03-10 08:00"
    assert "All 2 mailings" in email.body
    assert "(2 mailings) to a@example.com, b@example.com, c@example.com" in capsys.readouterr().out
    assert not Report.objects.exists()  # an extra copy: the daily bookkeeping is untouched


def test_send_report_command_defaults_to_the_last_24_hours_and_configured_recipients(report_settings, db):
    call_command("send_report")
    [email] = mail.outbox
    assert email.to == ["ops@example.com", "boss@example.com"]
    end = timezone.now()
    assert f"{end - timedelta(hours=24):%Y-%m-%d}" in email.subject and f"{end:%Y-%m-%d}" in email.subject


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--date", "10.03.2026"], "--date must be YYYY-MM-DD, not '10.03.2026'"),
        (["--date", "2026-02-30"], "--date must be YYYY-MM-DD"),
    ],
)
def test_send_report_command_rejects_bad_dates(report_settings, db, args, error):
    with pytest.raises(CommandError, match=error):
        call_command("send_report", *args)
    assert mail.outbox == []


def test_send_report_command_needs_recipients_and_reports_failure(report_settings, db):
    report_settings.MAILER_REPORT_RECIPIENTS = []
    with pytest.raises(CommandError, match="No recipients"):
        call_command("send_report")
    report_settings.EMAIL_BACKEND = f"{__name__}.FailingBackend"
    with pytest.raises(CommandError, match="Sending the report failed: ConnectionRefusedError"):
        call_command("send_report", "--to", "a@example.com")


def test_report_csv_cells_cannot_run_as_formulas(report_settings, make_mailing):
    start, end = reports.period_ending(DAY)
    make_mailing(
        text='=HYPERLINK("http://evil.example","Click")',
        start_at=start + timedelta(hours=1),
        end_at=end,
        started_at=start + timedelta(hours=1),
        state=MailingState.RUNNING,
    )
    content = reports.build(start, end).csv
    [row] = csv.DictReader(io.StringIO(content[1:]))
    assert row["Text"] == '\'=HYPERLINK("http://evil.example","Click")'
