"""REST API v1 views.

DRF's generic viewsets rather than function views: they give pagination, django-filter and a
complete OpenAPI description (drf-spectacular) without repeating ourselves per endpoint.
Every mutation is logged on "mailer.api" with the ids involved, in the message and in `extra`.
"""

from __future__ import annotations

import logging
from typing import Literal

from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action, api_view, authentication_classes, permission_classes
from rest_framework.generics import ListAPIView, get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mailer import audit, importing, receipts, stats
from mailer.api import schema
from mailer.api import serializers as s
from mailer.api.authentication import ReceiptTokenAuthentication
from mailer.api.errors import PreconditionFailed
from mailer.filters import StopStateFilterMixin
from mailer.http import count_param
from mailer.importing import ImportRefused, ImportReport, RowError, start_import
from mailer.models import (
    NAME_MAX,
    Approval,
    AuditEntry,
    Client,
    ClientField,
    ClientImport,
    DeliveryStatus,
    Mailing,
    MailingKind,
    MailingState,
    Message,
    MessageStatus,
    OptOutSource,
    StaleEdit,
    StopEntry,
    named,
    validate_moment,
)

logger = logging.getLogger("mailer.api")

PAST = {
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "approve": "approved",
    "refuse": "refused",
}


class StrictFilterSet(filters.FilterSet):
    """Refuses `?state=` and the like: an empty value is not a state or a date (django-filter
    would silently ignore it). Text filters keep accepting an empty string."""

    def is_valid(self) -> bool:
        if self.is_bound:
            for name, f in self.filters.items():
                if not isinstance(f, filters.CharFilter) and self.data.get(name) == "":
                    self.form.add_error(name, _("Give a value, or leave the parameter out."))
        return super().is_valid()


# Clients


class ClientFilter(StrictFilterSet):
    tag = filters.CharFilter(help_text="Exact tag.")
    operator_code = filters.CharFilter(help_text="Exact operator code, e.g. 916.")
    timezone = filters.CharFilter(help_text="Exact IANA time zone, e.g. Europe/Moscow.")
    phone = filters.CharFilter(lookup_expr="contains", max_length=11, help_text="Digits the phone contains.")
    name = filters.CharFilter(
        method="by_name", max_length=NAME_MAX, help_text="Part of the name, in any case: иван finds Иванов."
    )
    consent = filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="by_consent",
        help_text="true: consent to advertising on record; false: none.",
    )

    class Meta:
        model = Client
        fields = ("tag", "operator_code", "timezone", "phone", "name", "consent")

    def by_name(self, queryset, name: str, value: str):
        return queryset.filter(named(value))

    def by_consent(self, queryset, name: str, value: str):
        return queryset.filter(consent_at__isnull=value == "false")


@schema.clients
@extend_schema(tags=["clients"])
class ClientViewSet(viewsets.ModelViewSet):
    """Clients: the people mailings go to. `operator_code` is derived from the phone."""

    queryset = Client.objects.all()
    serializer_class = s.ClientSerializer
    # Ids are numbers; anything else falls through to urls.not_found's JSON 404.
    lookup_value_converter = "int"
    filterset_class = ClientFilter
    action_permissions = {"import_csv": importing.PERMISSIONS, "import_status": importing.PERMISSIONS}

    def perform_create(self, serializer) -> None:
        with transaction.atomic():
            client = serializer.save()
            client.record_saved(self.request.user, "api", None)
        logger.info(
            "client_id=%s created by user_id=%s",
            client.id,
            self.request.user.id,
            extra={"client_id": client.id},
        )

    def perform_update(self, serializer) -> None:
        with transaction.atomic():
            before = serializer.instance.audit_fields()
            client = serializer.save()
            client.record_saved(self.request.user, "api", before)
        logger.info(
            "client_id=%s updated by user_id=%s",
            client.id,
            self.request.user.id,
            extra={"client_id": client.id},
        )

    def perform_destroy(self, instance: Client) -> None:
        client_id = instance.id
        instance.delete_by(self.request.user, via="api")
        logger.info(
            "client_id=%s deleted by user_id=%s",
            client_id,
            self.request.user.id,
            extra={"client_id": client_id},
        )

    @schema.import_csv
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_csv(self, request: Request) -> Response:
        form = s.ImportRequestSerializer(data=request.data)
        if not form.is_valid():
            errors = [RowError(0, name, " ".join(str(m) for m in msgs)) for name, msgs in form.errors.items()]
            return Response(ImportReport(errors=errors, error_count=len(errors)).as_dict(), status=400)
        upload = form.validated_data["file"]
        try:
            imp = start_import(
                upload,
                user=request.user,
                filename=upload.name or "",
                all_or_nothing=form.validated_data["all_or_nothing"],
                via="api",
            )
        except ImportRefused as e:
            report = ImportReport(errors=[RowError(0, "file", str(e))], error_count=1)
            return Response(report.as_dict(), status=400)
        logger.info(
            "import_id=%s of %s bytes started by user_id=%s",
            imp.pk,
            imp.size,
            request.user.id,
            extra={"import_id": imp.pk},
        )
        url = reverse("api:client-import-status", kwargs={"import_id": imp.pk})
        return Response(_import_body(imp, url), status=202, headers={"Location": url})

    @schema.import_status
    @action(detail=False, methods=["get"], url_path="imports/<int:import_id>", url_name="import-status")
    def import_status(self, request: Request, import_id: int) -> Response:
        imp = get_object_or_404(ClientImport, pk=import_id)
        return Response(_import_body(imp, request.path))


def _import_body(imp: ClientImport, url: str) -> dict:
    return {
        "id": imp.pk,
        "url": url,
        "state": imp.state,
        "percent": imp.percent,
        "created_at": imp.created_at,
        "finished_at": imp.finished_at,
        **ImportReport.of(imp).as_dict(),
    }


# Mailings


class MailingFilter(StrictFilterSet):
    state = filters.ChoiceFilter(choices=MailingState.choices, help_text="Only mailings in this state.")
    kind = filters.ChoiceFilter(choices=MailingKind.choices, help_text="Only mailings of this kind.")
    approval = filters.ChoiceFilter(
        choices=Approval.choices,
        method="by_approval",
        help_text="Only mailings whose approval is this; waiting: those that await it still (not "
        "finished or cancelled).",
    )
    start_after = filters.DateFilter(
        field_name="start_at",
        lookup_expr="date__gte",
        validators=[validate_moment],
        help_text="YYYY-MM-DD: mailings starting on that day (server time zone) or later.",
    )
    start_before = filters.DateFilter(
        field_name="start_at",
        lookup_expr="date__lte",
        validators=[validate_moment],
        help_text="YYYY-MM-DD: mailings starting on that day (server time zone) or earlier.",
    )

    class Meta:
        model = Mailing
        fields = ("state", "kind", "approval", "start_after", "start_before")

    def by_approval(self, queryset, name: str, value: str):
        return queryset.filter(Mailing.approval_is(value))


@schema.mailings
@extend_schema(tags=["mailings"])
class MailingViewSet(viewsets.ModelViewSet):
    """Mailings: a text sent to the clients matching a filter between start and end."""

    queryset = Mailing.objects.select_related("created_by")
    serializer_class = s.MailingSerializer
    filterset_class = MailingFilter
    lookup_value_converter = "int"
    # Controlling a mailing is changing it; its statistics need what all statistics need.
    action_permissions = {
        "pause": ["mailer.change_mailing"],
        "resume": ["mailer.change_mailing"],
        "cancel": ["mailer.change_mailing"],
        # A second person's: Mailing.approve refuses the author (403).
        "approve": ["mailer.approve_mailing"],
        "refuse": ["mailer.approve_mailing"],
        "stats": stats.PERMISSIONS,
    }

    def perform_create(self, serializer) -> None:
        with transaction.atomic():
            mailing = serializer.save(created_by=self.request.user)
            mailing.record_saved(self.request.user, "api", None)
        logger.info(
            "mailing_id=%s created by user_id=%s",
            mailing.id,
            self.request.user.id,
            extra={"mailing_id": mailing.id},
        )

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        mailing = self.get_object()
        return _with_etag(Response(self.get_serializer(mailing).data), mailing)

    def update(self, request: Request, *args, **kwargs) -> Response:
        mailing = self.get_object()
        mailing.check_editable()  # before validating: a finished mailing is 409 whatever the body
        read_revision = _if_match(request)
        serializer = self.get_serializer(mailing, data=request.data, partial=kwargs.pop("partial", False))
        serializer.is_valid(raise_exception=True)
        for name, value in serializer.validated_data.items():
            setattr(mailing, name, value)
        try:
            # Locked and checked again: the engine may have finished it, someone else edited it.
            mailing.save_edit(read_revision, by=request.user, via="api")
        except StaleEdit as e:
            raise PreconditionFailed(
                _("%(reason)s GET it again and apply your change to that.") % {"reason": e}
            ) from None
        logger.info(
            "mailing_id=%s updated by user_id=%s",
            mailing.id,
            request.user.id,
            extra={"mailing_id": mailing.id},
        )
        return _with_etag(Response(self.get_serializer(mailing).data), mailing)

    def perform_destroy(self, instance: Mailing) -> None:
        read_revision = _if_match(self.request)
        if read_revision is not None and read_revision != instance.revision:
            raise PreconditionFailed(
                _("Mailing #%(id)s was changed since you read it; GET it again.") % {"id": instance.pk}
            )
        mailing_id = instance.id
        instance.delete_unless_running(by=self.request.user, via="api")  # MailingError -> 409
        logger.info(
            "mailing_id=%s deleted by user_id=%s",
            mailing_id,
            self.request.user.id,
            extra={"mailing_id": mailing_id},
        )

    def _control(self, request: Request, verb: Literal["pause", "resume", "cancel"]) -> Response:
        mailing = self.get_object()
        getattr(mailing, verb)(by=request.user, via="api")  # MailingError -> 409 (mailer.api.errors)
        logger.info(
            "mailing_id=%s %s by user_id=%s",
            mailing.id,
            PAST[verb],
            request.user.id,
            extra={"mailing_id": mailing.id},
        )
        return Response(self.get_serializer(mailing).data)

    @schema.control("pause", "scheduled, running")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: int) -> Response:
        return self._control(request, "pause")

    @schema.control("resume", "paused (it goes back to scheduled, then runs when due)")
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: int) -> Response:
        return self._control(request, "resume")

    @schema.control("cancel", "scheduled, running, paused; its pending messages are cancelled")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: int) -> Response:
        return self._control(request, "cancel")

    @schema.approve
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: int) -> Response:
        mailing = self.get_object()
        return self._decide(request, mailing, mailing.approve)

    @schema.refuse
    @action(detail=True, methods=["post"])
    def refuse(self, request: Request, pk: int) -> Response:
        mailing = self.get_object()
        body = s.RefusalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._decide(request, mailing, mailing.refuse, body.validated_data["reason"])

    def _decide(self, request: Request, mailing: Mailing, decide, *reason: str) -> Response:
        """Approve or refuse, from the revision named in If-Match if any: SelfApproval -> 403,
        nothing waiting -> 409 (mailer.api.errors), a save since -> 412."""
        read_revision = _if_match(request)
        try:
            decide(request.user, *reason, via="api", revision=read_revision)
        except StaleEdit as e:
            raise PreconditionFailed(
                _("%(reason)s GET it again and read what you approve.") % {"reason": e}
            ) from None
        logger.info(
            "mailing_id=%s %s by user_id=%s",
            mailing.id,
            PAST[self.action],
            request.user.id,
            extra={"mailing_id": mailing.id},
        )
        return _with_etag(Response(self.get_serializer(mailing).data), mailing)

    @schema.mailing_stats
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: int) -> Response:
        mailing = self.get_object()
        body = {
            "id": mailing.id,
            "state": mailing.state,
            "counts": stats.counts_of(mailing),
            **stats.guards_of(mailing),
            **stats.clicks_of(mailing),
            **stats.delivery_of(mailing),
            "operators": stats.operators_of(mailing),
            "undelivered_reasons": stats.reasons_of(mailing),
            "sms_parts": mailing.sms_parts,
            "sms_sent": stats.sms_sent_of(mailing),
            "timing": stats.timing(mailing),
        }
        return Response(s.MailingStatsSerializer(body).data)


def _with_etag(response: Response, mailing: Mailing) -> Response:
    response["ETag"] = f'"{mailing.revision}"'
    return response


def _if_match(request: Request) -> int | None:
    """The revision an If-Match header names (an ETag this API gave); None without one or for *."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    revision = count_param(header.removeprefix("W/").strip('"'))
    if revision is None:
        raise PreconditionFailed(
            _('If-Match must be an ETag of this mailing, like "3"; got %(header)s.')
            % {"header": repr(header[:40])}
        )
    return revision


class MessageFilter(StrictFilterSet):
    status = filters.ChoiceFilter(choices=MessageStatus.choices, help_text="Only messages with this status.")
    delivery_status = filters.ChoiceFilter(
        choices=DeliveryStatus.choices, help_text="Only messages whose delivery receipt said this."
    )

    class Meta:
        model = Message
        fields = ("status", "delivery_status")


@schema.mailing_messages
class MailingMessagesView(ListAPIView):
    serializer_class = s.MessageSerializer
    filterset_class = MessageFilter
    queryset = Message.objects.none()  # for the permission check (view_message)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        mailing = get_object_or_404(Mailing, pk=self.kwargs["pk"])  # DRF's: a non-number is a 404 too
        return Message.objects.filter(mailing=mailing).select_related("client").with_text().order_by("id")


class StopListFilter(StopStateFilterMixin, StrictFilterSet):
    phone = filters.CharFilter(
        lookup_expr="startswith", max_length=11, help_text="Phones starting with these digits."
    )
    state = filters.ChoiceFilter(
        method="by_state",
        choices=[("standing", "standing"), ("removed", "removed"), ("all", "all")],
        help_text="standing (the default): on the list now; removed: taken off; all.",
    )

    class Meta:
        model = StopEntry
        fields = ("phone", "state")


@schema.stop_list
@extend_schema(tags=["stop list"])
class StopListViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The stop list: phones that opted out get no message of any mailing; one that opts out
    while a mailing runs is skipped at send time (its message is cancelled, with the reason)."""

    queryset = StopEntry.objects.select_related("created_by", "removed_by")
    serializer_class = s.StopEntrySerializer
    filterset_class = StopListFilter
    lookup_field = "phone"
    lookup_value_converter = "str"
    action_permissions = {"remove": ["mailer.change_stopentry"]}

    def create(self, request: Request) -> Response:
        """Put a phone on the stop list; one already on it stays as it was (200)."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        entry, new = StopEntry.opt_out(
            serializer.validated_data["phone"],
            OptOutSource.API,
            serializer.validated_data.get("reason", ""),
            user=request.user,
        )
        logger.info("phone %s on the stop list (new: %s) by user_id=%s", entry.phone, new, request.user.id)
        body = self.get_serializer(entry).data
        return Response(body, status=status.HTTP_201_CREATED if new else status.HTTP_200_OK)

    def retrieve(self, request: Request, phone: str) -> Response:
        """The phone's standing entry; 404 when it is not on the stop list."""
        entry = get_object_or_404(StopEntry.objects.standing(), phone=phone)
        return Response(self.get_serializer(entry).data)

    @action(detail=True, methods=["post"])
    def remove(self, request: Request, phone: str) -> Response:
        """Take a phone off the stop list, saying why; the entry is kept as the record."""
        form = s.StopRemovalSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        entry = get_object_or_404(StopEntry.objects.standing(), phone=phone)
        StopEntry.opt_in(phone, form.validated_data["reason"], user=request.user, via="api")
        logger.info("phone %s off the stop list by user_id=%s", phone, request.user.id)
        entry.refresh_from_db()
        return Response(self.get_serializer(entry).data)


class AuditFilter(StrictFilterSet):
    actor = filters.CharFilter(field_name="actor_name", max_length=150, help_text="Exact username.")
    object_type = filters.ChoiceFilter(
        choices=[(k, k) for k in audit.OBJECT_TYPES], help_text="What kind of object."
    )
    object_id = filters.CharFilter(max_length=64, help_text="The object's id (a phone for the stop list).")
    action = filters.ChoiceFilter(choices=[(k, k) for k in audit.ACTIONS])
    since = filters.IsoDateTimeFilter(
        field_name="at", lookup_expr="gte", help_text="ISO 8601, e.g. 2026-12-01T00:00:00Z."
    )
    until = filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt", help_text="ISO 8601; not included.")

    class Meta:
        model = AuditEntry
        fields = ("actor", "object_type", "object_id", "action", "since", "until")


@schema.client_fields
class ClientFieldsView(ListAPIView):
    """The clients' custom fields: the keys `attributes` takes and texts use ({city})."""

    queryset = ClientField.objects.all()
    serializer_class = s.ClientFieldSerializer
    required_permissions = ["mailer.view_client"]
    pagination_class = None


@schema.audit
class AuditView(ListAPIView):
    """Who did what, and when (admins): newest first."""

    queryset = AuditEntry.objects.all()
    serializer_class = s.AuditEntrySerializer
    filterset_class = AuditFilter


class StatsView(APIView):
    required_permissions = stats.PERMISSIONS

    @schema.all_stats
    def get(self, request: Request) -> Response:
        mailings = Mailing.objects.all()
        # Explicit order: Django drops Meta.ordering from GROUP BY queries.
        annotated = stats.with_counts(mailings).order_by("-start_at", "-id")
        body = {
            "totals": stats.totals(mailings),
            "sms_sent": stats.sms_sent(mailings),
            "mailings": list(annotated),
        }
        return Response(s.StatsSerializer(body).data)


class ReceiptsView(APIView):
    """The gateway's door: delivery receipts, one or a list of up to receipts.MAX_BATCH, taken all
    or none (ReceiptTokenAuthentication lets the gateway in)."""

    authentication_classes = [ReceiptTokenAuthentication]
    permission_classes = []

    @schema.receipts
    def post(self, request: Request) -> Response:
        status_code, answer = receipts.receive(request.data)
        return Response(answer, status=status_code)


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([])
def not_found(request: Request, path: str) -> Response:
    """Unknown /api/v1/ addresses: a JSON 404 like the rest of the API, not Django's HTML page."""
    detail = _("No such API endpoint.")
    if not request.path.endswith("/"):
        detail = _("No such API endpoint. Addresses end with a slash: %(path)s/") % {"path": request.path}
    return Response({"detail": detail}, status=status.HTTP_404_NOT_FOUND)
