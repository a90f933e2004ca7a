"""One word for the SMS gateway: ProviderState is GatewayState (its table and rows stay)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("mailer", "0009_client_imports")]

    operations = [
        migrations.RenameModel("ProviderState", "GatewayState"),
        migrations.AlterModelOptions(name="gatewaystate", options={"verbose_name": "gateway state"}),
    ]
