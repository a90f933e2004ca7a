"""`{{ state|colour }}`: the Bootstrap colour of a state (a mailing's, a message's, or one named
like "import.done"), from the one table of them (dashboard.tables.COLOURS)."""

from __future__ import annotations

from django import template

from dashboard import tables
from mailer.models import reason_text
from mailer.timezones import zone_label

register = template.Library()
register.filter("colour", tables.colour)
# `{{ client.timezone|zone }}`: "Yekaterinburg (UTC+5)", as the forms offer it.
register.filter("zone", zone_label)
# `{{ message.last_error|reason }}`: the engine's reason or the gateway's words, for a person.
register.filter("reason", reason_text)


@register.filter
def status_label(value: str) -> str:
    """The translated name of a message's status or a mailing's state ("sent" -> "Sent")."""
    from mailer.models import MailingState, MessageStatus

    for choices in (MessageStatus, MailingState):
        if value in choices.values:
            return choices(value).label
    return value
