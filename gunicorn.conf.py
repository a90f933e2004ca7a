"""gunicorn's settings, read from the directory it starts in by every way the web runs here (the
Procfiles, the Dockerfile); its command line and WEB_CONCURRENCY still win."""

import os

# Sync workers, one request at a time each. A worker also waits after each answer for the client
# to close the connection (gunicorn's graceful close), so it is idle part of the time: twice the
# cores plus one, as gunicorn's docs advise. With two, clicks on PostgreSQL left a quarter of this
# machine's two cores idle (docs/benchmarks.md, "Clicks").
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * len(os.sched_getaffinity(0)) + 1)


def on_starting(server):
    """The CPU priority of this web and its workers (MAILER_WEB_NICE: the Procfile's `web` shares
    the CPU with the engine, its `public` goes first; mailer/cpu.py)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
    from django.conf import settings

    from mailer import cpu

    cpu.lower(settings.MAILER_WEB_NICE)
