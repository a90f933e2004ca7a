from __future__ import annotations

from django.core.management.base import BaseCommand

from mailer.models import Mailing, MailingCounts


class Command(BaseCommand):
    help = (
        "Check every mailing's message counts (MailingCounts) against its message rows and repair "
        "what differs. Safe while the service runs. Exit code 1 with --check if anything differs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Report only; repair nothing.")
        parser.add_argument("--mailing", type=int, action="append", help="Only this mailing (repeatable).")

    def handle(self, *args, check: bool = False, mailing: list[int] | None = None, **options):
        ids = Mailing.objects.order_by("id").values_list("id", flat=True)
        if mailing:
            ids = ids.filter(id__in=mailing)
        wrong = 0
        checked = 0
        for mailing_id in ids.iterator():
            checked += 1
            differences = MailingCounts.reconcile(mailing_id, repair=not check)
            if differences:
                wrong += 1
                shown = ", ".join(
                    f"{field} {kept} -> {counted}" for field, (kept, counted) in differences.items()
                )
                self.stdout.write(f"mailing {mailing_id}: {shown}{'' if check else ' (repaired)'}")
        verb = "differ" if check else "repaired"
        self.stdout.write(f"{checked} mailings checked, {wrong} {verb}.")
        if check and wrong:
            raise SystemExit(1)
