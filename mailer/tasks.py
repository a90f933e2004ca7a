"""Functions that django-q2 runs (by dotted path, with ids as arguments). Thin: the logic lives in
the modules they call."""

from __future__ import annotations


def send_daily_report() -> str:
    """Every 15 minutes (schedule "daily-report"): send today's report once its time has come."""
    from mailer.reports import send_due_report

    return send_due_report()
