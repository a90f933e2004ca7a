"""The django-q2 schedule that sends the daily report.

It runs every 15 minutes and `mailer.reports.send_due_report` decides whether the day's report is due
(MAILER_REPORT_TIME has passed and no report went out yet for today). So changing MAILER_REPORT_TIME
needs no new migration, and a missed or failed send is retried by the next run.
"""

from django.db import migrations
from django.utils import timezone

NAME = "daily-report"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={
            "func": "mailer.tasks.send_daily_report",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 15,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = (
        ("mailer", "0003_report"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    )

    operations = (migrations.RunPython(create_schedule, delete_schedule),)
