"""Migrations a rolling deploy survives: while they run and after, processes of the version before
still insert rows, naming only the columns they know. So a NOT NULL column added to a table that
was there has a default in the database itself (db_default), not only in Python."""

from __future__ import annotations

from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import AddField, CreateModel
from django.db.models import NOT_PROVIDED

# The migrations before this rule; theirs were added with the service stopped.
FIRST_CHECKED = ("mailer", "0036_delivery_receipts")


def test_a_not_null_column_added_to_a_table_has_a_database_default():
    loader = MigrationLoader(None, ignore_no_migrations=True)  # the files, no database
    checked = 0
    for (app, name), migration in sorted(loader.disk_migrations.items()):
        if app != FIRST_CHECKED[0] or name < FIRST_CHECKED[1]:
            continue
        new = {op.name.lower() for op in migration.operations if isinstance(op, CreateModel)}
        for operation in migration.operations:
            if (
                isinstance(operation, AddField)
                and not operation.field.null
                and operation.model_name not in new
            ):
                checked += 1
                assert operation.field.db_default is not NOT_PROVIDED, (
                    f"{name}: {operation.model_name}.{operation.name}"
                )
    assert checked >= 4  # 0036's: client, mailing counts (2), message
