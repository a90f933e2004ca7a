"""The safety net for the sending pumps: every minute, restart any that died."""

from django.db import migrations


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="mailer-ensure-pumps",
        defaults={"func": "mailer.tasks.ensure_pumps", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="mailer-ensure-pumps").delete()


class Migration(migrations.Migration):
    dependencies = [("mailer", "0004_daily_report_schedule")]
    operations = [migrations.RunPython(create, remove)]
