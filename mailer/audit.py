"""How the audit log reads: the names of its actions and objects, and its changes as text.

The entries themselves are AuditEntry rows (mailer.models), written by AuditEntry.record in the
same transaction as the change; this module only says them in the reader's language.
"""

from __future__ import annotations

import re
from datetime import datetime

from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from mailer.timezones import zone_label

ACTIONS = {
    "created": _("created"),
    "edited": _("edited"),
    "deleted": _("deleted"),
    "started": _("started"),
    "paused": _("paused"),
    "resumed": _("resumed"),
    "cancelled": _("cancelled"),
    "finished": _("finished"),
    "held": _("held for approval"),
    "approval_asked": _("approval asked"),
    "approval_withdrawn": _("approval withdrawn by an edit"),
    "approval_not_needed": _("approval no longer needed"),
    "approved": _("approved"),
    "refused": _("refused"),
    "opted_out": _("put on the stop list"),
    "opted_in": _("taken off the stop list"),
    "consent_given": _("consent given"),
    "consent_withdrawn": _("consent withdrawn"),
    "undeliverable": _("left out as undeliverable"),
    "deliverable": _("put back in audiences"),
    "role_changed": _("role changed"),
    "activated": _("activated"),
    "deactivated": _("deactivated"),
    "unlocked": _("sign-in unlocked"),
    "token_created": _("API token created"),
    "token_revoked": _("API token revoked"),
    "test_sent": _("test sent"),
    "import_started": _("import started"),
    "import_confirmed": _("import confirmed"),
}
OBJECT_TYPES = {
    "mailing": _("mailing"),
    "client": _("client"),
    "stop_list": _("stop list"),
    "user": _("user"),
    "token": _("API token"),
    "test_send": _("test send"),
    "import": _("client import"),
    "client_field": _("client field"),
}
# The changed fields, as the reader calls them.
FIELDS = {
    "text": _("text"),
    "kind": _("kind"),
    "start_at": _("start"),
    "end_at": _("end"),
    "filter_tags": _("tags"),
    "filter_operator_codes": _("operator codes"),
    "window_start": _("window from"),
    "window_end": _("window until"),
    "state": _("state"),
    "approval": _("approval"),
    "approval_sms": _("SMS to approve"),
    "refusal_reason": _("reason for refusal"),
    "phone": _("phone"),
    "phones": _("phones"),
    "tag": _("tag"),
    "timezone": _("time zone"),
    "consent_at": _("consent given at"),
    "undeliverable_at": _("undeliverable since"),
    "consent_source": _("how consent was given"),
    "reason": _("reason"),
    "removal_reason": _("reason"),
    "source": _("source"),
    "role": _("role"),
    "is_active": _("active"),
    "failures": _("failed sign-ins"),
    "name": _("name"),
    "attributes": _("fields"),
    "key": _("key"),
    "label": _("label"),
    "expires_at": _("expires"),
    "revoked_at": _("revoked"),
    "owner": _("owner"),
    "filename": _("file"),
    "size": _("size"),
    "all_or_nothing": _("all or nothing"),
}
VIA = {
    "ui": _("dashboard"),
    "api": _("API"),
    "admin": _("Django admin"),
    "cli": _("command line"),
    "engine": _("engine"),
    "import": _("import"),
    "link": _("unsubscribe link"),
}


def changes_text(changes: dict, limit: int = 10) -> str:
    """`field: before → after; ...`, each value cut short, at most `limit` fields."""
    parts = []
    for name, (before, after) in list(changes.items())[:limit]:
        if name in ("state", "kind", "source", "role", "approval"):  # stored codes: their labels
            before, after = _label(before), _label(after)
        else:  # dates and times as the reader writes them, in their zone; zones by their city
            before, after = _readable(name, before), _readable(name, after)
        parts.append(f"{FIELDS.get(name, name)}: {_short(before)} → {_short(after)}")
    if len(changes) > limit:
        parts.append("…")
    return "; ".join(parts)


def _label(value):
    """The label of a stored code: a mailing's or an import's state, an opt-out's source, a role,
    a mailing's approval."""
    from accounts.roles import ROLE_LABELS
    from mailer.models import Approval, ImportState, MailingKind, MailingState, OptOutSource

    for codes in (MailingState, MailingKind, ImportState, OptOutSource, Approval):
        if value in codes.values:
            return codes(value).label
    return ROLE_LABELS.get(value, value)


ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
ISO_TIME = re.compile(r"\d{2}:\d{2}:\d{2}")


def _readable(name: str, value):
    """A value as AuditEntry.fields stored it (ISO 8601 for dates and times) as a person reads it."""
    if not isinstance(value, str):
        return value
    if name == "timezone":
        return zone_label(value)
    if ISO_MOMENT.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if timezone.is_aware(moment):
            moment = timezone.localtime(moment)
        return formats.date_format(moment, "SHORT_DATETIME_FORMAT")
    if ISO_TIME.fullmatch(value):
        return value[:5]
    return value


def _short(value, most: int = 60) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    if isinstance(value, list):
        text = ", ".join(map(str, value[:10])) + (f" … (+{len(value) - 10})" if len(value) > 10 else "")
    else:
        text = str(value)
    return text if len(text) <= most else text[: most - 1] + "…"
