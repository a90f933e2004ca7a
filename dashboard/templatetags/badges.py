"""`{{ state|colour }}`: the Bootstrap colour of a mailing's state or a message's status, from the
one table of them (dashboard.tables.COLOURS)."""

from __future__ import annotations

from django import template

from dashboard import tables

register = template.Library()
register.filter("colour", tables.colour)
