"""Send the statistics report now (an extra copy: the daily bookkeeping in Report is not touched)."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from mailer import reports


class Command(BaseCommand):
    help = (
        "Email the mailing statistics: the last 24 hours, or with --date the 24 hours before "
        "MAILER_REPORT_TIME on that date (what the daily report of that date covers)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--to", action="append", default=[], metavar="ADDRESS",
            help="recipient (repeat, or comma-separate); default MAILER_REPORT_RECIPIENTS",
        )  # fmt: skip
        parser.add_argument("--date", help="YYYY-MM-DD")

    def handle(self, *args, to: list[str], date: str | None, **options) -> None:
        recipients = [a.strip() for item in to for a in item.split(",") if a.strip()]
        recipients = recipients or settings.MAILER_REPORT_RECIPIENTS
        if not recipients:
            raise CommandError(_("No recipients: give --to or set MAILER_REPORT_RECIPIENTS."))
        if date:
            try:
                day = _parse_date(date)
            except ValueError:
                raise CommandError(
                    _("--date must be YYYY-MM-DD, not %(date)s") % {"date": repr(date)}
                ) from None
            start, end = reports.period_ending(day)
        else:
            end = timezone.now()
            start = end - timedelta(hours=24)
        try:
            content = reports.send(start, end, recipients)
        except Exception as e:
            raise CommandError(
                _("Sending the report failed: %(error)s") % {"error": f"{type(e).__name__}: {e}"}
            ) from e
        self.stdout.write(
            ngettext(
                "Sent %(subject)s (%(count)s mailings) to %(recipients)s",
                "Sent %(subject)s (%(count)s mailings) to %(recipients)s",
                content.mailing_count,
            )
            % {
                "subject": repr(content.subject),
                "count": content.mailing_count,
                "recipients": ", ".join(recipients),
            }
        )


def _parse_date(value: str) -> date:
    if len(value) != 10:
        raise ValueError(value)
    return date.fromisoformat(value)
