"""The staff dashboard: typed function views, one template per page with htmx fragments.

A view renders "page.html#fragment" when htmx asks (request.htmx) and the whole page otherwise, so
every link and form also works without JavaScript. A normal POST redirects; an htmx POST
re-renders the fragment it came from, with the messages that say what happened.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.paginator import EmptyPage
from django.db.models import OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling
from django_tables2 import LazyPaginator, RequestConfig

from dashboard import charts, exports
from dashboard.filters import (
    AuditFilter,
    ClientFilter,
    MailingFilter,
    MessageFilter,
    StatsFilter,
    StopListFilter,
    distinct_values,
)
from dashboard.forms import (
    MAX_TEXT,
    ApprovalForm,
    ClientFieldForm,
    ClientForm,
    ImportForm,
    MailingForm,
    RefusalForm,
    StopEntryForm,
    StopRemovalForm,
    draft_timing,
)
from dashboard.tables import (
    AuditTable,
    ClientTable,
    MailingTable,
    MessageTable,
    StatsTable,
    StopListTable,
    UndeliverableTable,
)
from engine import testsends
from engine.scheduling import first_attempt_at
from mailer import importing, sms, stats
from mailer.http import HtmxHttpRequest, count_param
from mailer.models import (
    OPERATOR_CODE_RE,
    Approval,
    AuditEntry,
    ClickMinute,
    Client,
    ClientField,
    ClientImport,
    DeliveryMinute,
    DeliveryStatus,
    GatewayState,
    Mailing,
    MailingError,
    MailingState,
    MailingText,
    OptOutSource,
    SentMinute,
    StaleEdit,
    StopEntry,
    TestSend,
    TestSendState,
    approval_needed,
    hours_text,
    labels,
    normalize_text,
    tag_problem,
)
from mailer.timezones import zone_label
from mailer.windows import zone

PER_PAGE = 25
MAX_PER_PAGE = 100
CHART_HOURS = 72
PREVIEW_ROWS = 10
IMPORT_ERRORS_SHOWN = 500


def _page(
    request: HtmxHttpRequest, template: str, fragment: str, context: dict[str, Any], **kwargs
) -> HttpResponse:
    """The whole page, or only `fragment` when htmx swaps a part (but not on a history restore)."""
    if request.htmx and not request.htmx.history_restore_request:
        template = f"{template}#{fragment}"
    return render(request, template, context, **kwargs)


def _paginate(request: HtmxHttpRequest, table) -> None:
    """Order the table by `?sort=` and show `?page=` of `?per_page=` rows (at most MAX_PER_PAGE).

    LazyPaginator fetches one row more than a page instead of counting the whole table. A page
    that is not a number, or is past the end, shows the first.
    """
    RequestConfig(request, paginate=False).configure(table)
    per_page = min(count_param(request.GET.get("per_page")) or PER_PAGE, MAX_PER_PAGE)
    try:
        table.paginate(LazyPaginator, per_page=per_page, page=count_param(request.GET.get("page")) or 1)
    except EmptyPage:
        table.paginate(LazyPaginator, per_page=per_page, page=1)


# Home


def _running() -> list[dict[str, Any]]:
    running = list(
        stats.with_counts(Mailing.objects.filter(state=MailingState.RUNNING)).order_by("start_at")[:20]
    )
    rates = stats.rates([m.pk for m in running])
    result = []
    for m in running:
        progress = stats.progress(m, stats.annotated_counts(m), rates.get(m.pk))
        result.append(progress | {"delivery": stats.annotated_delivery(m)})
    return result


def _live_context() -> dict[str, Any]:
    gateway = GatewayState.get()
    return {
        "running": _running(),
        "gateway": gateway,
        "breaker_open": gateway.breaker_is_open(),
        "now": timezone.now(),
    }


def _hour_format() -> str:
    # Translators: a chart's hour label, in Django's date format ("Dec 4, 18:00"; Russian: "d.m H:00")
    return pgettext("chart label", "M j, H:00")


def _minute_format() -> str:
    # Translators: a chart's minute label, in Django's date format ("Dec 4, 18:05"; Russian: "d.m H:i")
    return pgettext("chart label", "M j, H:i")


def _hourly_chart() -> str:
    end = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=CHART_HOURS - 1)
    # From the per-minute counts (a few rows per minute of sending), not the messages.
    rows: dict[datetime, int] = {}
    for minute, sent in SentMinute.objects.filter(minute__gte=start).values_list("minute", "sent"):
        hour = minute.astimezone(UTC).replace(minute=0)
        rows[hour] = rows.get(hour, 0) + sent
    buckets = charts.fill_buckets(rows, start, end, timedelta(hours=1))
    local = [(formats.date_format(timezone.localtime(at), _hour_format()), n) for at, n in buckets]
    return charts.bar_chart(local, title=_("Messages sent per hour, last %(n)s hours") % {"n": CHART_HOURS})


def _awaiting_approval(user) -> QuerySet[Mailing] | None:
    """What awaits a second person's approval, soonest start first: for those who may give it."""
    if not user.has_perm("mailer.approve_mailing"):
        return None
    waiting = Mailing.objects.filter(Mailing.approval_is(Approval.WAITING))
    return waiting.select_related("created_by").order_by("start_at")


@permission_required("mailer.view_mailing", raise_exception=True)
def home(request: HtmxHttpRequest) -> HttpResponse:
    context = _live_context()
    if (waiting := _awaiting_approval(request.user)) is not None:
        context["awaiting_approval"] = list(waiting[:20])
        for mailing in context["awaiting_approval"]:
            mailing.yours = mailing.is_author(request.user)  # a second person approves it
    context["upcoming"] = Mailing.objects.filter(
        state=MailingState.SCHEDULED, end_at__gt=timezone.now()
    ).order_by("start_at")[:10]
    context["paused"] = Mailing.objects.filter(state=MailingState.PAUSED).order_by("start_at")[:10]
    context["hourly_chart"] = _hourly_chart()
    return render(request, "dashboard/home.html", context)


@permission_required("mailer.view_mailing", raise_exception=True)
@require_GET
def home_live(request: HtmxHttpRequest) -> HttpResponse:
    """The running mailings and the gateway's health, polled every 2 s while something runs."""
    context = _live_context()
    response = render(request, "dashboard/home.html#live", context)
    if not context["running"]:
        # 286 tells htmx to stop polling; the swapped-in fragment has no trigger either.
        return HttpResponseStopPolling(response.content)
    return response


# Mailings


@permission_required("mailer.view_mailing", raise_exception=True)
def mailing_list(request: HtmxHttpRequest) -> HttpResponse:
    filterset = MailingFilter(request.GET or None, queryset=Mailing.objects.all())
    table = MailingTable(filterset.qs)
    _paginate(request, table)
    context = {"filter": filterset, "table": table}
    if (waiting := _awaiting_approval(request.user)) is not None:
        context["awaiting_approval"] = waiting.count()
    return _page(request, "dashboard/mailing_list.html", "table", context)


def _duplicate_initial(source: Mailing) -> dict[str, Any]:
    """A copy's fields, starting in ten minutes and lasting as long as the original."""
    start = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=10)
    return {
        "text": source.text,
        "start_at": timezone.localtime(start),
        "end_at": timezone.localtime(start + (source.end_at - source.start_at)),
        "filter_tags": source.filter_tags,
        "filter_operator_codes": source.filter_operator_codes,
        "window_start": source.window_start,
        "window_end": source.window_end,
    }


@permission_required("mailer.add_mailing", raise_exception=True)
def mailing_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = MailingForm(request.POST)
        if form.is_valid():
            mailing = form.save(commit=False)
            mailing.created_by = request.user
            mailing.save_by(request.user)
            starts = formats.date_format(timezone.localtime(mailing.start_at), "SHORT_DATETIME_FORMAT")
            words = {"id": mailing.pk, "start": starts}
            if mailing.approval == Approval.WAITING:
                messages.success(
                    request,
                    _(
                        "Mailing #%(id)s created; it starts %(start)s or later, once a second person approves it."
                    )
                    % words,
                )
            else:
                messages.success(request, _("Mailing #%(id)s created; it starts %(start)s.") % words)
            return redirect("dashboard:mailing-detail", pk=mailing.pk)
    else:
        initial = {}
        if source_pk := count_param(request.GET.get("from")):
            # "Duplicate": the form filled in from another mailing; nothing is saved until submitted.
            initial = _duplicate_initial(get_object_or_404(Mailing, pk=source_pk))
        form = MailingForm(initial=initial)
    return render(request, "dashboard/mailing_form.html", {"form": form, "mailing": None})


@permission_required("mailer.change_mailing", raise_exception=True)
def mailing_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    mailing = get_object_or_404(Mailing, pk=pk)
    if not mailing.is_editable:
        messages.error(
            request,
            _("Mailing #%(id)s is %(state)s; it can no longer be edited.")
            % {"id": mailing.pk, "state": mailing.get_state_display().lower()},
        )
        return redirect("dashboard:mailing-detail", pk=mailing.pk)
    form = MailingForm(request.POST or None, instance=mailing)
    if request.method == "POST" and form.is_valid():
        try:
            form.save(commit=False).save_edit(form.cleaned_data["revision"], by=request.user)
        except StaleEdit as e:
            form.add_error(
                None,
                _("%(why)s Your changes are still in the form: open the mailing again to see theirs.")
                % {"why": e},
            )
        except MailingError as e:
            messages.error(request, str(e))
            return redirect("dashboard:mailing-detail", pk=mailing.pk)
        else:
            saved = _("Mailing #%(id)s saved.") % {"id": mailing.pk}
            if mailing.approval == Approval.WAITING:
                saved += " " + _("It waits for a second person's approval.")
            messages.success(request, saved)
            return redirect("dashboard:mailing-detail", pk=mailing.pk)
    return render(request, "dashboard/mailing_form.html", {"form": form, "mailing": mailing})


@permission_required("mailer.view_mailing", raise_exception=True)
@require_GET
def mailing_audience(request: HtmxHttpRequest) -> HttpResponse:
    """What the form's mailing would be now (the form asks as it changes): how many clients the
    filter matches, the text's length as SMS, and so about how many SMS it takes."""
    tags = {t.strip() for t in request.GET.getlist("filter_tags")}
    tags |= {t.strip() for t in request.GET.get("new_tags", "").split(",")}
    tags = {t for t in tags if t and not tag_problem(t)}  # the form reports a bad one on saving
    codes = [c for c in request.GET.getlist("filter_operator_codes") if re.fullmatch(OPERATOR_CODE_RE, c)]
    draft = draft_timing(request.GET)
    draft.filter_tags, draft.filter_operator_codes = sorted(tags), codes
    # The audience as the counts below were made for; the page sends it back with them, so that
    # typing the text (the audience unchanged) counts no clients again.
    key = "|".join([*sorted(tags), "#", *sorted(codes), "#", draft.kind])
    sent_back = {name: request.GET.get(f"{name}_count") for name in Mailing.AUDIENCE_COUNTS}
    counts = {name: 0 if raw == "0" else count_param(raw) for name, raw in sent_back.items()}
    if request.GET.get("audience_key") != key or None in counts.values():
        counts = draft.audience_counts()
    count = counts["audience"]
    # As it will be saved (normalize_text); longer than a text may be is cut, to bound the work.
    draft.text = normalize_text(request.GET.get("text", ""))[: 2 * MAX_TEXT]
    draft.track_links = request.GET.get("track_links") == "on"
    # Its length as sent: links short, a personal text's variables as their fallbacks.
    length = sms.measure(draft.as_measured())
    estimate = count * length.parts
    context = {
        "counts": counts,
        "audience": count,
        "excluded": counts["stop_list"],
        "audience_key": key,
        "tags": sorted(tags),
        "codes": sorted(codes),
        "length": length,
        "length_problem": draft.text_problem(length),
    }
    if draft.per_message() and not context["length_problem"]:
        # Each client's own text: the range of parts, the sum, three as clients get them.
        context["personal"] = personal = draft.audience_texts()
        estimate = personal.sms
    context |= {
        "sms_estimate": estimate,
        "needs_approval": bool(estimate) and approval_needed(estimate),
        "approval_above": settings.MAILER_APPROVAL_ABOVE,
    }
    if quiet := draft.quiet_hours():
        context["quiet"] = hours_text(quiet)
    context["local_starts"] = _local_starts(draft)
    return render(request, "dashboard/mailing_form.html#audience", context)


def _local_starts(draft: Mailing, most: int = 12) -> list[dict[str, Any]]:
    """For each time zone clients have (west to east; Russia has eleven), when they get a mailing
    like `draft` if it is later than its start (quiet hours, its window): "clients in Vladivostok
    get it from 09:00 their time". The last row says how many zones more, if any."""
    rows = []
    zones = sorted(
        distinct_values("timezone"), key=lambda name: draft.start_at.astimezone(zone(name)).utcoffset()
    )
    for name in zones:
        at = first_attempt_at(draft, name, draft.start_at)
        if at is None or at - draft.start_at >= timedelta(minutes=1):
            local = at and formats.time_format(at.astimezone(zone(name)), "TIME_FORMAT")
            rows.append({"zone": zone_label(name), "local": local, "yours": at and timezone.localtime(at)})
    if len(rows) > most:
        rows[most - 1 :] = [{"more": len(rows) - most + 1}]
    return rows


def _per_minute_chart(mailing: Mailing) -> str:
    rows = charts.per_minute(SentMinute.objects.filter(mailing=mailing, sent__gt=0), "sent")
    titles = (_("Messages sent per minute"), _("Messages sent per %(n)s minutes"))
    return _minute_chart(rows, titles, (_("messages"), _("messages per %(n)s min")))


def _clicks_chart(mailing: Mailing) -> str:
    rows = charts.per_minute(ClickMinute.objects.filter(mailing=mailing, clicks__gt=0), "clicks")
    titles = (_("Clicks per minute"), _("Clicks per %(n)s minutes"))
    return _minute_chart(rows, titles, (_("clicks"), _("clicks per %(n)s min")))


def _delivery_chart(mailing: Mailing) -> str:
    rows = charts.per_minute(DeliveryMinute.objects.filter(mailing=mailing, delivered__gt=0), "delivered")
    titles = (_("Messages delivered per minute"), _("Messages delivered per %(n)s minutes"))
    return _minute_chart(rows, titles, (_("messages"), _("messages per %(n)s min")))


def _minute_chart(rows: dict, titles: tuple[str, str], units: tuple[str, str]) -> str:
    """A bar per minute (per several, when there are many): `titles` and `units` for one minute
    and for n."""
    if not rows:
        return charts.bar_chart([], title=titles[0])
    buckets = charts.fill_buckets(rows, min(rows), max(rows), timedelta(minutes=1))
    buckets, factor = charts.coarsen(buckets, 120)
    unit = units[0] if factor == 1 else units[1] % {"n": factor}
    local = [(timezone.localtime(at), n) for at, n in buckets]
    # The day too when the sending ran past midnight (or started days after the first messages);
    # else the time alone, as date_format's "H:i" writes it (a page has three charts of 120 bars).
    if len({at.date() for at, _n in local}) > 1:
        day_and_time = _minute_format()
        labels = [(formats.date_format(at, day_and_time), n) for at, n in local]
    else:
        labels = [(f"{at:%H:%M}", n) for at, n in local]
    title = titles[0] if factor == 1 else titles[1] % {"n": factor}
    return charts.bar_chart(labels, title=title, unit=unit)


def _summary_context(mailing: Mailing, user) -> dict[str, Any]:
    timing = stats.timing(mailing)
    counts = stats.counts_of(mailing)
    delivery = stats.delivery_of(mailing)
    received = delivery["delivered"] or delivery["undelivered"]
    statuses = labels(DeliveryStatus)
    return {
        "mailing": mailing,
        "may_decide": mailing.may_decide(user),
        "is_author": mailing.is_author(user),
        "approval_above": settings.MAILER_APPROVAL_ABOVE,
        "timing": timing,
        "progress": stats.progress(mailing, counts, timing["messages_per_minute"]),
        "polling": _is_live(mailing),
        "length": sms.measure(mailing.text),
        "personal": mailing.is_personal(),
        "sms_estimate": counts["total"] * mailing.sms_parts,
        "sms_sent": stats.sms_sent_of(mailing),
        "guards": _guards(mailing),
        "clicks": stats.clicks_of(mailing),
        "delivery": delivery,
        # Per operator and why not: once receipts have come.
        "operators": stats.operators_of(mailing) if received else [],
        "reasons": [r | {"label": statuses[r["status"]]} for r in stats.reasons_of(mailing)]
        if received
        else [],
    }


def _guards(mailing: Mailing) -> dict[str, int]:
    """What the guardrails keep from it: as counted while it ran, or, before it has started, as
    its audience stands now (what an approver decides on)."""
    if mailing.started_at is None and mailing.is_editable:
        counts = mailing.audience_counts()
        return {"no_consent": counts["no_consent"], "cap_held": counts["capped"], "cap_expired": 0}
    return stats.guards_of(mailing)


def _is_live(mailing: Mailing) -> bool:
    """Worth polling: running, or due to start at the engine's next tick."""
    if mailing.state == MailingState.RUNNING:
        return True
    return Mailing.objects.filter(Mailing.due_to_start(timezone.now()), pk=mailing.pk).exists()


@permission_required("mailer.view_mailing", raise_exception=True)
def mailing_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    mailing = get_object_or_404(Mailing, pk=pk)
    if request.htmx and request.htmx.target == "summary":
        response = render(
            request, "dashboard/mailing_detail.html#summary", _summary_context(mailing, request.user)
        )
        return response if _is_live(mailing) else HttpResponseStopPolling(response.content)
    messages_ = mailing.messages.select_related("mailing", "client").with_text()
    filterset = MessageFilter(request.GET or None, queryset=messages_)
    table = MessageTable(filterset.qs)
    _paginate(request, table)
    context = {"mailing": mailing, "filter": filterset, "table": table}
    if request.htmx and not request.htmx.history_restore_request:
        # Filtering or paging the messages: the summary and the chart are not re-rendered.
        return render(request, "dashboard/mailing_detail.html#messages", context)
    context |= _summary_context(mailing, request.user)
    clicked = context["clicks"]["clicks"]  # the summary's: its counts row is not read again
    context |= {
        "minute_chart": _per_minute_chart(mailing),
        "clicks_chart": _clicks_chart(mailing) if mailing.tracks_links() or clicked else None,
        "delivery_chart": _delivery_chart(mailing) if context["operators"] else None,
        "texts": _texts(mailing),
    }
    if request.user.has_perm("mailer.add_mailing"):
        # Who tested what on which phone: for those who may send tests, as on a test send's page.
        context["test_sends"] = mailing.test_sends.select_related("created_by")[:10]
    return render(request, "dashboard/mailing_detail.html", context)


def _texts(mailing: Mailing) -> list[MailingText]:
    """Its texts with how many messages were sent with each, when it has had more than one."""
    if mailing.current_text_id and mailing.texts.count() < 2:
        return []
    return list(mailing.texts.order_by("number"))


# Test sends


@permission_required("mailer.add_mailing", raise_exception=True)
@require_POST
def test_send(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    """ "Send a test": the text of the mailing form (or of mailing `pk`) to the phones typed. A
    sender sends it within a moment; the answer shows where the button was (htmx polls it)."""
    mailing = get_object_or_404(Mailing, pk=pk) if pk else None
    text = mailing.text if mailing else normalize_text(request.POST.get("text", ""))
    phones = request.POST.get("test_phones", "")
    try:
        test = testsends.queue(text, phones, user=request.user, mailing=mailing)
    except testsends.Refused as e:
        if request.htmx:
            return render(request, "dashboard/_test_send.html", {"test_error": str(e)})
        messages.error(request, str(e))
        return (
            redirect("dashboard:mailing-detail", pk=mailing.pk)
            if mailing
            else redirect("dashboard:mailing-create")
        )
    if request.htmx:
        return render(request, "dashboard/_test_send.html", _test_send_context(test))
    return redirect("dashboard:test-send-detail", test_send_id=test.pk)


def _test_send_context(test: TestSend) -> dict[str, Any]:
    waiting = timezone.now() - test.created_at > timedelta(seconds=TEST_SEND_PATIENCE)
    return {"test": test, "no_sender": test.state == TestSendState.QUEUED and waiting}


TEST_SEND_PATIENCE = 10  # seconds queued before the page asks whether a worker runs


@permission_required("mailer.add_mailing", raise_exception=True)
@require_GET
def test_send_detail(request: HtmxHttpRequest, test_send_id: int) -> HttpResponse:
    test = get_object_or_404(TestSend.objects.select_related("created_by", "mailing"), pk=test_send_id)
    context = _test_send_context(test)
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "dashboard/_test_send.html", context)
        return response if test.is_running else HttpResponseStopPolling(response.content)
    return render(request, "dashboard/test_send.html", context)


CONTROLS = {"pause": Mailing.pause, "resume": Mailing.resume, "cancel": Mailing.cancel}
DONE = {
    "pause": gettext_lazy("Mailing #%(id)s paused."),
    "resume": gettext_lazy("Mailing #%(id)s resumed."),
    "cancel": gettext_lazy("Mailing #%(id)s cancelled."),
    "approve": gettext_lazy("Mailing #%(id)s approved: it starts when its time comes."),
    "approved_due": gettext_lazy("Mailing #%(id)s approved: its time has come, it starts within seconds."),
    "refuse": gettext_lazy(
        "Mailing #%(id)s refused: it does not start; a change to its text, kind or clients asks again."
    ),
}


@permission_required("mailer.change_mailing", raise_exception=True)
@require_POST
def mailing_control(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    mailing = get_object_or_404(Mailing, pk=pk)
    try:
        CONTROLS[action](mailing, by=request.user)
    except MailingError as e:
        messages.error(request, str(e))
    else:
        messages.success(request, DONE[action] % {"id": mailing.pk})
    if request.htmx:
        return render(
            request, "dashboard/mailing_detail.html#summary", _summary_context(mailing, request.user)
        )
    return redirect("dashboard:mailing-detail", pk=mailing.pk)


@permission_required("mailer.approve_mailing", raise_exception=True)
@require_POST
def mailing_approval(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    """A second person approves or refuses (saying why) a mailing that waits for it, as its page
    showed it (the form's revision)."""
    mailing = get_object_or_404(Mailing, pk=pk)
    form = (RefusalForm if action == "refuse" else ApprovalForm)(request.POST)
    if not form.is_valid():
        if "reason" in form.errors:
            messages.error(request, _("Say why the mailing is refused."))
        else:  # a revision that is no number: not a form this page made
            messages.error(request, _("Open the mailing again and decide on what it shows."))
    else:
        revision = form.cleaned_data["revision"]
        try:
            if action == "refuse":
                mailing.refuse(request.user, form.cleaned_data["reason"], revision=revision)
            else:
                mailing.approve(request.user, revision=revision)
        except MailingError as e:
            messages.error(request, str(e))
        else:
            done = "approved_due" if action == "approve" and _is_live(mailing) else action
            messages.success(request, DONE[done] % {"id": mailing.pk})
    if request.htmx:
        return render(
            request, "dashboard/mailing_detail.html#summary", _summary_context(mailing, request.user)
        )
    return redirect("dashboard:mailing-detail", pk=mailing.pk)


@permission_required("mailer.delete_mailing", raise_exception=True)
@require_POST
def mailing_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    mailing = get_object_or_404(Mailing, pk=pk)
    number = mailing.pk
    try:
        mailing.delete_unless_running(by=request.user)
    except MailingError as e:
        messages.error(request, str(e))
        if request.htmx:
            return render(
                request, "dashboard/mailing_detail.html#summary", _summary_context(mailing, request.user)
            )
        return redirect("dashboard:mailing-detail", pk=mailing.pk)
    messages.success(request, _("Mailing #%(id)s and its messages deleted.") % {"id": number})
    url = reverse("dashboard:mailing-list")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@permission_required("mailer.view_message", raise_exception=True)
@require_GET
def mailing_messages_export(request: HtmxHttpRequest, pk: int, kind: str) -> HttpResponseBase:
    """The mailing's messages as CSV or .xlsx (`kind`), filtered as its page's table."""
    mailing = get_object_or_404(Mailing, pk=pk)
    filterset = MessageFilter(request.GET or None, queryset=mailing.messages.all())
    return exports.download(request, kind, exports.messages_export(mailing, filterset.qs))


@permission_required("mailer.change_mailing", raise_exception=True)
@require_GET
def mailing_clickers_export(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Who clicked the mailing's links (phone, first click, clicks), for managers: CSV."""
    mailing = get_object_or_404(Mailing, pk=pk)
    return exports.download(request, "csv", exports.clickers_export(mailing))


# The stop list


@permission_required("mailer.view_stopentry", raise_exception=True)
def stop_list(request: HtmxHttpRequest) -> HttpResponse:
    return _stop_list_page(request, StopEntryForm())


def _stop_list_page(request: HtmxHttpRequest, form: StopEntryForm, status: int = 200) -> HttpResponse:
    """The list (filtered as the query asks), with the form to add a phone (and its errors)."""
    queryset = StopEntry.objects.select_related("created_by", "removed_by")
    filterset = StopListFilter(request.GET or None, queryset=queryset)
    table = StopListTable(filterset.qs)
    _paginate(request, table)
    context = {"filter": filterset, "table": table, "form": form}
    return _page(request, "dashboard/stop_list.html", "table", context, status=status)


@permission_required("mailer.add_stopentry", raise_exception=True)
@require_POST
def stop_list_add(request: HtmxHttpRequest) -> HttpResponse:
    form = StopEntryForm(request.POST)
    if not form.is_valid():
        return _stop_list_page(request, form, status=400)
    phone = form.cleaned_data["phone"]
    _entry, new = StopEntry.opt_out(phone, OptOutSource.UI, form.cleaned_data["reason"], user=request.user)
    if new:
        messages.success(
            request, _("%(phone)s is on the stop list: it gets no more messages.") % {"phone": phone}
        )
    else:
        messages.info(request, _("%(phone)s was on the stop list already.") % {"phone": phone})
    return redirect("dashboard:stop-list")


@permission_required("mailer.change_stopentry", raise_exception=True)
@require_POST
def stop_list_remove(request: HtmxHttpRequest, entry_id: int) -> HttpResponse:
    entry = get_object_or_404(StopEntry.objects.standing(), pk=entry_id)
    form = StopRemovalForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Say why %(phone)s may receive mailings again.") % {"phone": entry.phone})
    elif StopEntry.opt_in(entry.phone, form.cleaned_data["reason"], user=request.user):
        messages.success(request, _("%(phone)s is off the stop list.") % {"phone": entry.phone})
    return redirect("dashboard:stop-list")


# The audit log


@permission_required("mailer.view_auditentry", raise_exception=True)
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    """Who created, edited, started, paused, resumed, cancelled, deleted what, and when."""
    filterset = AuditFilter(request.GET or None, queryset=AuditEntry.objects.all())
    table = AuditTable(filterset.qs)
    _paginate(request, table)
    return _page(request, "dashboard/audit.html", "table", {"filter": filterset, "table": table})


# Statistics


def _stats_queryset(request: HtmxHttpRequest) -> tuple[StatsFilter, QuerySet[Mailing]]:
    filterset = StatsFilter(request.GET or None, queryset=Mailing.objects.all())
    return filterset, filterset.qs


@permission_required(stats.PERMISSIONS, raise_exception=True)
def statistics(request: HtmxHttpRequest) -> HttpResponse:
    filterset, mailings = _stats_queryset(request)
    table = StatsTable(mailings)
    _paginate(request, table)
    # Counts for the shown page only: counting every mailing's messages to show 25 of them
    # would read the whole message table on each request.
    shown = [row.record.pk for row in table.page.object_list]
    table.counts = {
        m.pk: stats.annotated_counts(m)
        | stats.annotated_guards(m)
        | stats.annotated_clicks(m)
        | stats.annotated_delivery(m)
        | {"sms_sent": m.sms_sent}
        for m in stats.with_counts(Mailing.objects.filter(pk__in=shown))
    }
    return _page(request, "dashboard/statistics.html", "table", {"filter": filterset, "table": table})


@permission_required(stats.PERMISSIONS, raise_exception=True)
@require_GET
def statistics_totals(request: HtmxHttpRequest) -> HttpResponse:
    """Counts by status over all filtered mailings. The page loads it after itself: it reads every
    message of those mailings, which takes a moment on a million rows."""
    _filterset, mailings = _stats_queryset(request)
    totals = stats.totals(mailings)
    context = {
        "totals": totals,
        "accepted_rate": stats.accepted_rate(totals),
        "sms_sent": stats.sms_sent(mailings),
    }
    return render(request, "dashboard/statistics.html#totals", context)


@permission_required(stats.PERMISSIONS, raise_exception=True)
@require_GET
def statistics_export(request: HtmxHttpRequest, kind: str) -> HttpResponseBase:
    """The statistics table as CSV or .xlsx (`kind`), filtered as the page."""
    _filterset, mailings = _stats_queryset(request)
    export = exports.overview_export(stats.with_counts(mailings).order_by("-start_at", "-id"))
    return exports.download(request, kind, export)


# Clients


@permission_required("mailer.view_client", raise_exception=True)
def client_list(request: HtmxHttpRequest) -> HttpResponse:
    filterset = ClientFilter(request.GET or None, queryset=Client.objects.all())
    table = ClientTable(filterset.qs.annotate(opted_out=StopEntry.standing_for(OuterRef("phone"))))
    _paginate(request, table)
    context = {
        "filter": filterset,
        "table": table,
        # One COUNT over the filtered clients: an index scan at worst, 1,000,000 clients in ~0.1 s.
        "matching": filterset.qs.count(),
        "can_import": request.user.has_perms(importing.PERMISSIONS),
    }
    return _page(request, "dashboard/client_list.html", "table", context)


@permission_required("mailer.add_client", raise_exception=True)
def client_create(request: HtmxHttpRequest) -> HttpResponse:
    form = ClientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        client = form.save(commit=False)
        client.save_by(request.user)
        messages.success(request, _("Client %(phone)s added.") % {"phone": client.phone})
        return redirect("dashboard:client-list")
    return render(request, "dashboard/client_form.html", {"form": form, "client": None})


@permission_required("mailer.view_client", raise_exception=True)
def client_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    client = get_object_or_404(Client, pk=pk)
    stopped = StopEntry.objects.standing().filter(phone=client.phone).first()
    form = ClientForm(request.POST or None, instance=client)
    if request.method == "POST":
        if not request.user.has_perm("mailer.change_client"):
            return HttpResponse(_("You may not change clients."), status=403)
        if form.is_valid():
            form.save(commit=False).save_by(request.user)
            messages.success(request, _("Client %(phone)s saved.") % {"phone": client.phone})
            return redirect("dashboard:client-list")
    attributes = [(key, label, client.attributes.get(key, "")) for key, label in form.declared.items()]
    context = {"form": form, "client": client, "stopped": stopped, "attributes": attributes}
    return render(request, "dashboard/client_form.html", context)


@permission_required("mailer.view_client", raise_exception=True)
def undeliverable(request: HtmxHttpRequest) -> HttpResponse:
    """Clients left out of audiences because their last MAILER_UNDELIVERED_LIMIT messages came
    back undelivered, latest first; a manager may put one back."""
    table = UndeliverableTable(
        Client.objects.filter(undeliverable_at__isnull=False).order_by("-undeliverable_at", "-pk")
    )
    _paginate(request, table)
    context = {"table": table, "limit": settings.MAILER_UNDELIVERED_LIMIT}
    return _page(request, "dashboard/undeliverable.html", "table", context)


@permission_required("mailer.change_client", raise_exception=True)
@require_POST
def client_put_back(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    client = get_object_or_404(Client, pk=pk)
    if client.put_back(request.user):
        messages.success(request, _("%(phone)s is back in audiences.") % {"phone": client.phone})
    to_client = request.POST.get("next") == "client"
    return redirect(
        reverse("dashboard:client-edit", args=[pk]) if to_client else reverse("dashboard:undeliverable")
    )


@permission_required("mailer.delete_client", raise_exception=True)
@require_POST
def client_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    client = get_object_or_404(Client, pk=pk)
    client.delete_by(request.user)
    messages.success(
        request, _("Client %(phone)s deleted; their past messages are kept.") % {"phone": client.phone}
    )
    url = reverse("dashboard:client-list")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@permission_required("mailer.view_client", raise_exception=True)
def client_fields(request: HtmxHttpRequest) -> HttpResponse:
    """The clients' custom fields: everyone who sees clients sees them; admins declare them."""
    form = ClientFieldForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm("mailer.add_clientfield"):
            return HttpResponse(_("You may not declare fields."), status=403)
        if form.is_valid():
            field = form.save(commit=False)
            field.save_by(request.user)
            messages.success(request, _("Field {%(key)s} declared.") % {"key": field.key})
            return redirect("dashboard:client-fields")
    edits = [
        (field, ClientFieldForm(instance=field, prefix=f"f{field.pk}")) for field in ClientField.objects.all()
    ]
    return render(request, "dashboard/client_fields.html", {"form": form, "fields": edits})


@permission_required("mailer.change_clientfield", raise_exception=True)
@require_POST
def client_field_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    field = get_object_or_404(ClientField, pk=pk)
    form = ClientFieldForm(request.POST, instance=field, prefix=f"f{field.pk}")
    if form.is_valid():
        form.save(commit=False).save_by(request.user)
        messages.success(request, _("Field {%(key)s} saved.") % {"key": field.key})
    else:
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
    return redirect("dashboard:client-fields")


@permission_required("mailer.delete_clientfield", raise_exception=True)
@require_POST
def client_field_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    field = get_object_or_404(ClientField, pk=pk)
    field.delete_by(request.user)
    messages.success(
        request, _("Field {%(key)s} deleted; clients' values stay, hidden.") % {"key": field.key}
    )
    return redirect("dashboard:client-fields")


@permission_required(importing.PERMISSIONS, raise_exception=True)
def client_import(request: HtmxHttpRequest) -> HttpResponse:
    """Upload a file: "Check" stops after the check for a go-ahead, "Import" writes at once. A
    worker does the work; the import's page follows it."""
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            imp = importing.start_import(
                upload,
                user=request.user,
                filename=upload.name,
                all_or_nothing=form.cleaned_data["all_or_nothing"],
                write="check" not in request.POST,
            )
        except importing.ImportRefused as e:
            form.add_error("file", str(e))
        else:
            return redirect("dashboard:client-import-detail", pk=imp.pk)
    recent = ClientImport.objects.select_related("created_by")[:10]
    context = {
        "form": form,
        "recent": recent,
        "default_timezone": zone_label(settings.MAILER_DEFAULT_CLIENT_TIMEZONE),
    }
    return render(request, "dashboard/client_import.html", context)


@permission_required(importing.PERMISSIONS, raise_exception=True)
@require_GET
def client_import_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Progress while it runs (htmx polls the fragment), then the report."""
    imp = get_object_or_404(ClientImport, pk=pk)
    report = importing.ImportReport.of(imp)
    context = {
        "imp": imp,
        "report": report.as_dict(errors=IMPORT_ERRORS_SHOWN),
        "errors": list(importing.error_rows(report.errors[:IMPORT_ERRORS_SHOWN])),
        "file_format": importing.format_label(imp),
        "good_rows": imp.rows_to_write,
        "default_timezone": zone_label(settings.MAILER_DEFAULT_CLIENT_TIMEZONE),
    }
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "dashboard/client_import_detail.html#progress", context)
        return response if imp.is_running else HttpResponseStopPolling(response.content)
    context["header"], context["rows"] = importing.first_rows(imp, PREVIEW_ROWS)
    return render(request, "dashboard/client_import_detail.html", context)


@permission_required(importing.PERMISSIONS, raise_exception=True)
@require_POST
def client_import_confirm(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    imp = get_object_or_404(ClientImport, pk=pk)
    if importing.confirm(imp, by=request.user):
        messages.success(request, _("Import #%(id)s: writing the clients.") % {"id": imp.pk})
    else:
        messages.error(request, _("Import #%(id)s has nothing to write now.") % {"id": imp.pk})
    return redirect("dashboard:client-import-detail", pk=imp.pk)


@permission_required(importing.PERMISSIONS, raise_exception=True)
@require_GET
def client_import_report(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Every stored error (up to importing.ERRORS_KEPT), as CSV: the row, its phone as typed, the
    column in the reader's language, the problem."""
    imp = get_object_or_404(ClientImport, pk=pk)
    errors = [importing.RowError(*e) for e in imp.errors]
    return exports.download(request, "csv", exports.import_errors_export(f"import-{imp.pk}-errors", errors))


@login_not_required
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever a page's <link rel="icon"> says."""
    return redirect(static("favicon.svg"), permanent=True)
