"""Senders per host: a heartbeat row per sender process (no global slots), and the every-minute
safety net becomes housekeeping (the worker restarts its own senders)."""

from django.db import migrations, models


def forget_slots(apps, schema_editor):
    # Liveness rows only: the senders of the new worker write their own.
    apps.get_model("mailer", "WorkerHeartbeat").objects.all().delete()


def housekeeping_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name="mailer-ensure-pumps").delete()
    Schedule.objects.update_or_create(
        name="mailer-housekeeping",
        defaults={"func": "mailer.tasks.housekeeping", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def pump_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name="mailer-housekeeping").delete()
    Schedule.objects.update_or_create(
        name="mailer-ensure-pumps",
        defaults={"func": "mailer.tasks.ensure_pumps", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


class Migration(migrations.Migration):
    dependencies = [("mailer", "0010_gateway_state")]

    operations = [
        migrations.RunPython(forget_slots, migrations.RunPython.noop),
        migrations.AlterField("workerheartbeat", "slot", models.PositiveSmallIntegerField(default=0)),
        migrations.AlterField("workerheartbeat", "owner", models.CharField(max_length=80, unique=True)),
        migrations.RunPython(housekeeping_schedule, pump_schedule),
    ]
