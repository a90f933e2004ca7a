from __future__ import annotations

from django.core.management.base import BaseCommand

from engine import worker


class Command(BaseCommand):
    help = (
        "Run the worker: MAILER_SENDERS sender processes and the django-q2 cluster for other tasks. "
        "Stops within seconds of SIGTERM (the Procfile's, compose's and Kubernetes' worker)."
    )

    def handle(self, *args, **options):
        worker.run()
