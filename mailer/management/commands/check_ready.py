"""The /readyz checks from the command line: exit 0 when ready, 1 when not (worker probes)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from mailer.monitoring import readiness


class Command(BaseCommand):
    help = "Database reachable, migrations applied, a worker heartbeat recent; exit 1 if not."

    def handle(self, *args, **options) -> None:
        ready, checks = readiness()
        self.stdout.write(json.dumps({"status": "ready" if ready else "not ready", "checks": checks}))
        if not ready:
            raise CommandError("not ready")
