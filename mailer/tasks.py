"""django-q2 tasks. Functions take ids, never model instances (their arguments are pickled).

Sending is not a task: the worker's sender processes do it (mailer/worker.py).
"""

from __future__ import annotations


def housekeeping() -> str:
    """Every minute (schedule "mailer-housekeeping"): queue again a client import whose worker
    died (its lease ran out), and forget senders that stopped beating long ago."""
    from mailer.importing import resume_imports
    from mailer.worker import forget_gone_senders

    resume_imports()
    return f"{forget_gone_senders()} gone senders forgotten"


def run_import(import_id: int) -> str:
    """A client import (mailer.importing): check, then write; resumable."""
    from mailer.importing import run_import

    return run_import(import_id)


def send_daily_report() -> str:
    """Every 15 minutes (schedule "daily-report"): send today's report once its time has come."""
    from mailer.reports import send_due_report

    return send_due_report()
