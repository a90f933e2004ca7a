"""django-q2 tasks. Functions take ids, never model instances (their arguments are pickled).

Sending is not a task: the worker's sender processes do it (engine/worker.py).
"""

from __future__ import annotations


def housekeeping() -> str:
    """Every minute (schedule "mailer-housekeeping"): queue again a client import whose worker
    died (its lease ran out), or fail it after a few deaths, report a test send whose sender died,
    forget senders that stopped beating long ago, and delete old message rows when
    MAILER_MESSAGE_RETENTION_DAYS is set (the mailings' counts stay)."""
    from django.conf import settings

    from engine.testsends import expire_stale
    from engine.worker import forget_gone_senders
    from mailer.importing import resume_imports
    from mailer.models import MailingCounts

    resume_imports()
    expire_stale()
    purged = 0
    if settings.MAILER_MESSAGE_RETENTION_DAYS:
        purged = MailingCounts.purge_old_messages(settings.MAILER_MESSAGE_RETENTION_DAYS)
    return f"{forget_gone_senders()} gone senders forgotten, {purged} old messages deleted"


def run_import(import_id: int) -> str:
    """A client import (mailer.importing): check, then write; resumable."""
    from mailer.importing import run_import

    return run_import(import_id)


def send_daily_report() -> str:
    """Every 15 minutes (schedule "daily-report"): send today's report once its time has come."""
    from mailer.reports import send_due_report

    return send_due_report()
