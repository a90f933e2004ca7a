"""Many rows in one statement: INSERT ... VALUES (...), (...) with ON CONFLICT, written out, for the
counters folded in bulk (clicks, delivery receipts) and the engine's per-operator counts."""

from __future__ import annotations

from django.db import connection

# Rows a statement carries at most (SQLite takes 32,766 parameters, PostgreSQL 65,535).
ROWS_PER_STATEMENT = 1000


def insert(sql: str, rows: list[tuple], **names: str) -> list[tuple]:
    """Run the INSERT `sql` (its `{values}` filled in) for `rows`, ROWS_PER_STATEMENT at a time;
    what it returned."""
    returned = []
    with connection.cursor() as cursor:
        for at in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[at : at + ROWS_PER_STATEMENT]
            values = ", ".join([f"({', '.join(['%s'] * len(chunk[0]))})"] * len(chunk))
            cursor.execute(sql.format(values=values, **names), [value for row in chunk for value in row])
            if cursor.description:
                returned += cursor.fetchall()
    return returned


def least_greatest() -> tuple[str, str]:
    """The names of the two-argument minimum and maximum in this database's SQL."""
    return ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
