"""SpooledClick as an UNLOGGED table on PostgreSQL: a click's insert writes no WAL, so its commit
waits for no flush to disk (README, "Under load"). Nothing on SQLite."""

from django.db import migrations


def _set(persistence: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = schema_editor.quote_name(apps.get_model("mailer", "SpooledClick")._meta.db_table)
        schema_editor.execute(f"ALTER TABLE {table} SET {persistence}")

    return run


class Migration(migrations.Migration):
    dependencies = [("mailer", "0037_message_queue_index")]

    operations = [migrations.RunPython(_set("UNLOGGED"), _set("LOGGED"))]
