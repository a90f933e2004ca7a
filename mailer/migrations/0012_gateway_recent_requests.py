from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("mailer", "0011_senders_per_host")]

    operations = [
        migrations.AddField("gatewaystate", "recent_ok", models.PositiveIntegerField(default=0)),
        migrations.AddField("gatewaystate", "recent_down", models.PositiveIntegerField(default=0)),
    ]
