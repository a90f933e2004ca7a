"""The dashboard's tables (django-tables2). Big tables page with LazyPaginator: no COUNT(*)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from operator import itemgetter

import django_tables2 as tables
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.timesince import timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from mailer import audit, stats
from mailer.models import (
    CAP_HELD_WHY,
    Approval,
    AuditEntry,
    Client,
    Mailing,
    MailingState,
    Message,
    MessageStatus,
    StopEntry,
    reason_text,
)
from mailer.stats import STATUSES
from mailer.timezones import zone_label
from mailer.windows import in_window, local_time, opens_at, zone

# The one place for the colour of a state (Bootstrap's names): badges here and in templates (the
# `colour` filter), the progress bars. A mailing's state and a message's status by their value;
# the states of other things by "<thing>.<state>", as the same word may mean another state there.
COLOURS = {
    "scheduled": "info",
    "running": "primary",
    "paused": "warning",
    "cancelled": "secondary",
    "finished": "success",
    "pending": "light",
    "sent": "success",
    "failed": "danger",
    "expired": "warning",
    "client.opted_out": "secondary",
    "client.undeliverable": "warning",
    "delivery.delivered": "success",
    "delivery.undelivered": "danger",
    "delivery.expired": "warning",
    "delivery.rejected": "danger",
    "import.checked": "secondary",
    "import.done": "success",
    "import.failed": "danger",
    "gateway.ok": "success",
    "gateway.paused": "danger",
    "token.expired": "secondary",
    "user.locked_out": "warning",
    "approval.waiting": "warning",
    "approval.approved": "success",
    "approval.refused": "danger",
}


def colour(value: str) -> str:
    return COLOURS.get(value, "light")


def badge(value: str, label: str) -> str:
    return format_html('<span class="badge text-bg-{}">{}</span>', colour(value), label)


# A column a phone's screen leaves out (the row's page has it): the rest then fits without scrolling.
WIDE_ONLY = {"th": {"class": "d-none d-md-table-cell"}, "td": {"class": "d-none d-md-table-cell"}}


class MomentColumn(tables.Column):
    """A date-time in the current time zone, formatted in Python (DateTimeColumn renders a
    template for every cell)."""

    def __init__(self, format: str = "SHORT_DATETIME_FORMAT", **kwargs) -> None:
        super().__init__(**kwargs)
        self.format = format

    def render(self, value) -> str:
        return formats.date_format(timezone.localtime(value), self.format)


class MailingTable(tables.Table):
    id = tables.Column(
        linkify=("dashboard:mailing-detail", {"pk": tables.A("pk")}), verbose_name="#", localize=False
    )
    text = tables.Column(
        linkify=("dashboard:mailing-detail", {"pk": tables.A("pk")}),
        attrs={"td": {"class": "text-truncate cell-text"}},
        verbose_name=gettext_lazy("Text"),
    )
    kind = tables.Column(verbose_name=gettext_lazy("Kind"), attrs=WIDE_ONLY)
    state = tables.Column(verbose_name=gettext_lazy("State"))
    start_at = MomentColumn(verbose_name=gettext_lazy("Start"))
    end_at = MomentColumn(verbose_name=gettext_lazy("End"), attrs=WIDE_ONLY)
    audience = tables.Column(
        empty_values=(), orderable=False, verbose_name=gettext_lazy("Filter"), attrs=WIDE_ONLY
    )
    window = tables.Column(
        empty_values=(), orderable=False, verbose_name=gettext_lazy("Local window"), attrs=WIDE_ONLY
    )

    class Meta:
        model = Mailing
        fields = ("id", "text", "kind", "state", "start_at", "end_at", "audience", "window")
        attrs = {"class": "table table-sm table-hover align-middle"}
        order_by = ("-start_at",)

    def render_state(self, record: Mailing) -> str:
        state = badge(record.state, record.get_state_display())
        if record.awaits_approval or record.approval == Approval.REFUSED:
            return format_html(
                "{} {}", state, badge(f"approval.{record.approval}", record.get_approval_display())
            )
        return state

    def render_audience(self, record: Mailing) -> str:
        parts = []
        if record.filter_tags:
            parts.append(_("tags %(tags)s") % {"tags": ", ".join(record.filter_tags)})
        if record.filter_operator_codes:
            parts.append(_("codes %(codes)s") % {"codes": ", ".join(record.filter_operator_codes)})
        return "; ".join(parts) or _("all clients")

    def render_window(self, record: Mailing) -> str:
        if not record.has_window:
            return _("any time")
        return f"{record.window_start:%H:%M}–{record.window_end:%H:%M}"


class CountColumn(tables.Column):
    """A message count of the row's mailing, from `table.counts` (filled for the shown page only)."""

    def __init__(self, status: str, **kwargs) -> None:
        super().__init__(empty_values=(), orderable=False, **kwargs)
        self.status = status

    def render(self, record: Mailing, table: StatsTable) -> int:
        return table.counts.get(record.pk, {}).get(self.status, 0)


class PercentColumn(tables.Column):
    """A rate of the row's mailing, `rate(counts)` of `table.counts` like CountColumn; "–" for none."""

    def __init__(self, rate: Callable[[dict], float | None], **kwargs) -> None:
        super().__init__(empty_values=(), orderable=False, **kwargs)
        self.rate = rate

    def render(self, record: Mailing, table: StatsTable) -> str:
        counts = table.counts.get(record.pk)
        rate = self.rate(counts) if counts else None
        return "–" if rate is None else f"{formats.number_format(rate, 1)} %"


class StatsTable(tables.Table):
    """Mailings with their message counts; the counts can't be sorted on, as that would count
    the messages of every mailing on each request."""

    id = tables.Column(
        linkify=("dashboard:mailing-detail", {"pk": tables.A("pk")}), verbose_name="#", localize=False
    )
    text = tables.Column(
        attrs={"td": {"class": "text-truncate cell-text"}},
        verbose_name=gettext_lazy("Text"),
    )
    kind = tables.Column(verbose_name=gettext_lazy("Kind"), attrs=WIDE_ONLY)
    state = tables.Column(verbose_name=gettext_lazy("State"))
    start_at = MomentColumn(verbose_name=gettext_lazy("Start"))
    total = CountColumn("total", verbose_name=gettext_lazy("Total"))

    class Meta:
        model = Mailing
        fields = ("id", "text", "kind", "state", "start_at", "total")
        attrs = {"class": "table table-sm table-hover align-middle"}
        order_by = ("-start_at",)

    def __init__(self, *args, **kwargs) -> None:
        # A phone shows the total, the accepted and their rate; a wider screen every count.
        extra = [
            (s, CountColumn(s, verbose_name=MessageStatus(s).label, attrs={} if s == "sent" else WIDE_ONLY))
            for s in STATUSES
        ]
        extra.append(("accepted_rate", PercentColumn(stats.accepted_rate, verbose_name=_("Accepted, %"))))
        extra.append(("no_consent", CountColumn("no_consent", verbose_name=_("No consent"), attrs=WIDE_ONLY)))
        extra.append(
            ("cap_expired", CountColumn("cap_expired", verbose_name=_("Expired by the cap"), attrs=WIDE_ONLY))
        )
        extra.append(("sms_parts", tables.Column(verbose_name=_("Parts"), orderable=False, attrs=WIDE_ONLY)))
        extra.append(("sms_sent", CountColumn("sms_sent", verbose_name=_("SMS sent"), attrs=WIDE_ONLY)))
        extra.append(("clicks", CountColumn("clicks", verbose_name=_("Clicks"), attrs=WIDE_ONLY)))
        extra.append(("clickers", CountColumn("clickers", verbose_name=_("Clicked"), attrs=WIDE_ONLY)))
        extra.append(
            (
                "click_rate",
                PercentColumn(itemgetter("click_rate"), verbose_name=_("Click rate, %"), attrs=WIDE_ONLY),
            )
        )
        extra.append(
            ("unsubscribed", CountColumn("unsubscribed", verbose_name=_("Unsubscribed"), attrs=WIDE_ONLY))
        )
        extra.append(("delivered", CountColumn("delivered", verbose_name=_("Delivered"), attrs=WIDE_ONLY)))
        extra.append(
            ("undelivered", CountColumn("undelivered", verbose_name=_("Not delivered"), attrs=WIDE_ONLY))
        )
        extra.append(
            ("no_receipt", CountColumn("no_receipt", verbose_name=_("No receipt yet"), attrs=WIDE_ONLY))
        )
        extra.append(
            (
                "delivery_rate",
                PercentColumn(itemgetter("delivery_rate"), verbose_name=_("Delivered, %"), attrs=WIDE_ONLY),
            )
        )
        super().__init__(*args, extra_columns=extra, **kwargs)
        self.counts: dict[int, dict[str, int]] = {}

    def render_state(self, record: Mailing) -> str:
        return badge(record.state, record.get_state_display())


class ClientTable(tables.Table):
    phone = tables.Column(
        linkify=("dashboard:client-edit", {"pk": tables.A("pk")}), verbose_name=gettext_lazy("Phone")
    )
    # Not orderable: no index sorts a million names.
    name = tables.Column(
        verbose_name=pgettext_lazy("client", "Name"),
        orderable=False,
        attrs={"td": {"class": "text-truncate", "style": "max-width: 14rem"}},
    )
    operator_code = tables.Column(verbose_name=gettext_lazy("Operator"))
    tag = tables.Column(verbose_name=gettext_lazy("Tag"))
    timezone = tables.Column(verbose_name=gettext_lazy("Time zone"))
    consent_at = MomentColumn(
        "SHORT_DATE_FORMAT", verbose_name=gettext_lazy("Consent"), attrs=WIDE_ONLY, empty_values=()
    )
    created_at = MomentColumn(verbose_name=gettext_lazy("Added"))
    # Annotated by the view (StopEntry.standing_for): the page's rows only.
    opted_out = tables.Column(verbose_name=gettext_lazy("Stop list"), orderable=False, empty_values=())

    class Meta:
        model = Client
        fields = (
            "phone",
            "name",
            "operator_code",
            "tag",
            "timezone",
            "consent_at",
            "created_at",
            "opted_out",
        )
        attrs = {"class": "table table-sm table-hover align-middle"}

    def render_timezone(self, value: str) -> str:
        return zone_label(value)

    def render_consent_at(self, value) -> str:
        return MomentColumn.render(self.columns["consent_at"].column, value) if value else _("none")

    def render_opted_out(self, value: bool) -> str:
        return badge("client.opted_out", _("opted out")) if value else ""


class UndeliverableTable(tables.Table):
    """Clients whose numbers no longer answer (mailer/receipts.py), each with its way back."""

    phone = tables.Column(
        linkify=("dashboard:client-edit", {"pk": tables.A("pk")}), verbose_name=gettext_lazy("Phone")
    )
    name = tables.Column(verbose_name=pgettext_lazy("client", "Name"), orderable=False)
    operator_code = tables.Column(verbose_name=gettext_lazy("Operator"), orderable=False)
    tag = tables.Column(verbose_name=gettext_lazy("Tag"), orderable=False)
    undeliverable_at = MomentColumn(verbose_name=gettext_lazy("Left out since"), orderable=False)
    put_back = tables.TemplateColumn(
        template_name="dashboard/_put_back.html", verbose_name="", orderable=False, empty_values=()
    )

    class Meta:
        model = Client
        fields = ("phone", "name", "operator_code", "tag", "undeliverable_at")
        attrs = {"class": "table table-sm table-hover align-middle"}


class MessageTable(tables.Table):
    id = tables.Column(verbose_name="#", localize=False)
    phone = tables.Column(
        accessor="client__phone", verbose_name=gettext_lazy("Phone"), default=gettext_lazy("(deleted client)")
    )
    status = tables.Column(verbose_name=gettext_lazy("Status"))
    attempts = tables.Column(verbose_name=gettext_lazy("Attempts"))
    sent_at = MomentColumn("DATETIME_FORMAT", verbose_name=gettext_lazy("Accepted at"))
    # The text the gateway was given (the mailing's texts are listed above the table).
    sent_text = tables.Column(
        accessor="carried_text",
        verbose_name=gettext_lazy("Text"),
        default="",
        attrs={"td": {"class": "small text-truncate", "style": "max-width: 16rem"}},
    )
    last_error = tables.Column(verbose_name=gettext_lazy("Why"), attrs={"td": {"class": "small"}})
    # What the gateway's receipt said, when, and its words.
    delivery_status = tables.Column(verbose_name=gettext_lazy("Receipt"), empty_values=(), orderable=False)

    class Meta:
        model = Message
        fields = (
            "id",
            "phone",
            "status",
            "attempts",
            "sent_at",
            "delivery_status",
            "last_error",
            "sent_text",
        )
        attrs = {"class": "table table-sm align-middle"}

    def render_delivery_status(self, record: Message) -> str:
        if not record.delivery_status:
            return _("no receipt yet") if record.status == MessageStatus.SENT else ""
        label = badge(f"delivery.{record.delivery_status}", record.get_delivery_status_display())
        when = formats.date_format(timezone.localtime(record.delivered_at), "SHORT_DATETIME_FORMAT")
        return format_html(
            '{}<div class="small text-body-secondary">{}{}</div>',
            label,
            when,
            f" · {record.delivery_error}" if record.delivery_error else "",
        )

    def render_status(self, record: Message) -> str:
        label = badge(record.status, record.get_status_display())
        if record.status != MessageStatus.PENDING:
            return label
        return format_html('{}<div class="small text-body-secondary">{}</div>', label, waiting_why(record))

    def render_last_error(self, value: str) -> str:
        return reason_text(value)

    def render_sent_text(self, value: str) -> str:
        return format_html('<span title="{}">{}</span>', value, value)


def waiting_why(message: Message, now: datetime | None = None) -> str:
    """What a waiting message waits for and until when, as a person reads it: the mailing's start,
    a pause, the client's local window ("until 10:00 client's time, in 2 hours"), quiet hours, a
    retry after the gateway failed, or its turn in the queue. `message.mailing` and `.client` are at hand."""
    now = now or timezone.now()
    mailing = message.mailing
    if mailing.state == MailingState.SCHEDULED and mailing.approval == Approval.WAITING:
        return _("until a second person approves the mailing")
    if mailing.state == MailingState.SCHEDULED and mailing.approval == Approval.REFUSED:
        return _("the mailing was refused")
    if mailing.state == MailingState.SCHEDULED:
        return _("until the mailing starts, %(when)s") % {"when": _moment(mailing.start_at)}
    if mailing.state == MailingState.PAUSED:
        return _("the mailing is paused")
    due = max(now, message.next_attempt_at)
    if message.last_error == CAP_HELD_WHY and due > now and message.client is not None:
        local = formats.time_format(due.astimezone(zone(message.client.timezone)), "TIME_FORMAT")
        return _("frequency cap: until %(time)s client's time, in %(left)s") % {
            "time": local,
            "left": _left(due, now),
        }
    if (spans := mailing.send_windows()) and message.client is not None:
        tz = message.client.timezone
        opens = opens_at(due, tz, spans)
        if opens is not None and (opens > due or (opens > now and not message.attempts)):
            words = {
                "time": formats.time_format(opens.astimezone(zone(tz)), "TIME_FORMAT"),
                "left": _left(opens, now),
            }
            quiet = mailing.quiet_hours()
            # Judged now: the engine has set the next attempt to when quiet hours end, just outside.
            if quiet and in_window(local_time(now, tz), *quiet):
                return _("quiet hours: until %(time)s client's time, in %(left)s") % words
            return _("until %(time)s client's time, in %(left)s") % words
    if due > now:
        return _("retry at %(time)s, in %(left)s") % {
            "time": _moment(due, "TIME_FORMAT"),
            "left": _left(due, now),
        }
    return _("its turn in the queue")


def _moment(value: datetime, format: str = "SHORT_DATETIME_FORMAT") -> str:
    return formats.date_format(timezone.localtime(value), format)


def _left(then: datetime, now: datetime) -> str:
    return timeuntil(then, now, depth=1) if then - now >= timedelta(minutes=1) else _("less than a minute")


class StopListTable(tables.Table):
    phone = tables.Column(verbose_name=gettext_lazy("Phone"))
    created_at = MomentColumn(verbose_name=gettext_lazy("On the list since"))
    source = tables.Column(verbose_name=gettext_lazy("Source"))
    reason = tables.Column(verbose_name=gettext_lazy("Reason"), attrs={"td": {"class": "small"}})
    created_by = tables.Column(accessor="created_by__username", verbose_name=gettext_lazy("By"), default="–")
    removed = tables.TemplateColumn(
        template_name="dashboard/_stop_entry_actions.html",
        verbose_name="",
        orderable=False,
        empty_values=(),
    )

    class Meta:
        model = StopEntry
        fields = ("phone", "created_at", "source", "reason", "created_by", "removed")
        attrs = {"class": "table table-sm table-hover align-middle"}
        order_by = ("-created_at",)

    def render_source(self, record: StopEntry) -> str:
        return record.get_source_display()


class AuditTable(tables.Table):
    at = MomentColumn("DATETIME_FORMAT", verbose_name=gettext_lazy("When"))
    actor_name = tables.Column(verbose_name=gettext_lazy("Who"), empty_values=())
    via = tables.Column(verbose_name=gettext_lazy("Via"))
    action = tables.Column(verbose_name=gettext_lazy("Action"))
    object = tables.Column(empty_values=(), orderable=False, verbose_name=gettext_lazy("What"))
    changes = tables.Column(
        orderable=False, verbose_name=gettext_lazy("Changes"), attrs={"td": {"class": "small"}}
    )

    class Meta:
        model = AuditEntry
        fields = ("at", "actor_name", "via", "action", "object", "changes")
        attrs = {"class": "table table-sm table-hover align-middle"}
        order_by = ("-at",)

    def render_actor_name(self, value: str) -> str:
        return value or _("system")

    def render_via(self, value: str) -> str:
        return audit.VIA.get(value, value)

    def render_action(self, value: str) -> str:
        return audit.ACTIONS.get(value, value)

    def render_object(self, record: AuditEntry) -> str:
        kind = audit.OBJECT_TYPES.get(record.object_type, record.object_type)
        label = f"{kind} {record.object_id}"
        links = {"mailing": "dashboard:mailing-detail", "client": "dashboard:client-edit"}
        if record.object_type in links and record.object_id.isdigit():
            return format_html(
                '<a href="{}">{}</a>', reverse(links[record.object_type], args=[record.object_id]), label
            )
        return label

    def render_changes(self, value: dict) -> str:
        return audit.changes_text(value)
