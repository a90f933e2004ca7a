"""Per-mailing message counts, so that pages, the API and the daily report don't count message
rows. Filled here from the rows (one grouped query per mailing on the (mailing, status) index)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Count, Max, Min


def fill(apps, schema_editor):
    Mailing = apps.get_model("mailer", "Mailing")
    Message = apps.get_model("mailer", "Message")
    MailingCounts = apps.get_model("mailer", "MailingCounts")
    for mailing_id in Mailing.objects.values_list("id", flat=True).iterator():
        rows = Message.objects.filter(mailing_id=mailing_id).order_by().values_list("status").annotate(n=Count("id"))
        span = Message.objects.filter(mailing_id=mailing_id, status="sent").aggregate(
            first=Min("sent_at"), last=Max("sent_at")
        )
        MailingCounts.objects.create(
            mailing_id=mailing_id, first_sent_at=span["first"], last_sent_at=span["last"], **dict(rows)
        )


class Migration(migrations.Migration):
    dependencies = [("mailer", "0012_gateway_recent_requests")]

    operations = [
        migrations.CreateModel(
            name="MailingCounts",
            fields=[
                (
                    "mailing",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="counts",
                        serialize=False,
                        to="mailer.mailing",
                    ),
                ),
                ("pending", models.BigIntegerField(default=0)),
                ("sent", models.BigIntegerField(default=0)),
                ("failed", models.BigIntegerField(default=0)),
                ("expired", models.BigIntegerField(default=0)),
                ("cancelled", models.BigIntegerField(default=0)),
                ("first_sent_at", models.DateTimeField(blank=True, null=True)),
                ("last_sent_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"verbose_name_plural": "mailing counts"},
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
