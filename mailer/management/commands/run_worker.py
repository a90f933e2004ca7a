from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand

from mailer.tasks import ensure_pumps


class Command(BaseCommand):
    help = "Run the worker: start the sending pumps and the django-q2 cluster (the Procfile's worker)."

    def handle(self, *args, **options):
        slots = ensure_pumps()
        if slots:
            self.stdout.write(f"Sending pumps enqueued for slots {slots}")
        call_command("qcluster")
