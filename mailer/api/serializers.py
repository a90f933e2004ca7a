"""Serializers: the API's shape of clients, mailings and messages, and their input validation.

Input is checked by the serializer fields first and then by the model's own `full_clean()`, so the
API, the admin and the dashboard share one set of rules; model errors come back as 400s keyed by
the API's field names.
"""

from __future__ import annotations

from typing import ClassVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mailer import receipts, sms, stats
from mailer.models import (
    ATTRIBUTE_MAX,
    PHONE_TYPED_MAX,
    REFUSAL_REASON_MAX,
    TAG_MAX,
    Approval,
    AuditEntry,
    Client,
    ClientField,
    DeliveryStatus,
    ImportState,
    Mailing,
    Message,
    StopEntry,
    attributes_problems,
    clean_attributes,
    default_client_timezone,
    normalize_phone,
    operator_code_of,
    phone_problem,
    validate_operator_code,
    validate_tag,
    validate_timezone,
)


def _full_clean(
    instance, field_names: dict[str, str] | None = None, exclude: list[str] | None = None
) -> None:
    """Run the model's rules; raise a DRF ValidationError keyed by API field names."""
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as e:
        errors: dict[str, list[str]] = {}
        for name, messages in e.message_dict.items():
            key = (field_names or {}).get(name, name)
            errors.setdefault(key, []).extend(messages)
        raise serializers.ValidationError(errors) from None


class StrictCharField(serializers.CharField):
    """A string and only a string: DRF would otherwise turn 0 or true into "0" / "True"."""

    # DRF's own words, which its Russian catalogue leaves untranslated.
    default_error_messages: ClassVar = {"invalid": gettext_lazy("Not a valid string.")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class RefuseUnknownKeys:
    """Refuses keys it does not know, naming them: a typo ("filters") must not silently drop a
    restriction and send a mailing to everyone. Read-only fields are known (and ignored)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in set(data) - set(self.fields))
            if unknown:
                allowed = ", ".join(name for name, f in self.fields.items() if not f.read_only)
                raise serializers.ValidationError(
                    {
                        k: [
                            _("Unknown key %(key)s; allowed: %(allowed)s.")
                            % {"key": repr(k), "allowed": allowed}
                        ]
                        for k in unknown
                    }
                )
        return super().to_internal_value(data)


class StrictSerializer(RefuseUnknownKeys, serializers.Serializer):
    pass


class StrictModelSerializer(RefuseUnknownKeys, serializers.ModelSerializer):
    serializer_field_mapping: ClassVar = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


# Clients


@extend_schema_field({"type": "string", "maxLength": PHONE_TYPED_MAX, "example": "79161234567"})
class PhoneField(StrictCharField):
    """A phone as people write it (+7 916 123-45-67, 8 916 ...), as 7XXXXXXXXXX (the model's
    normalize_phone); checked by validate_phone, for messages that say which part is wrong."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**{**kwargs, "max_length": PHONE_TYPED_MAX})

    def to_internal_value(self, data) -> str:
        return normalize_phone(super().to_internal_value(data))


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": ATTRIBUTE_MAX, "nullable": True},
        "example": {"city": "Казань", "promo_code": "A7K2"},
    }
)
class AttributesField(serializers.JSONField):
    pass


class ClientSerializer(StrictModelSerializer):
    attributes = AttributesField(
        required=False,
        help_text='Custom field values by key, strings: {"city": "Казань"}. Only the keys declared '
        "(GET /api/v1/client-fields/); an unknown key is a 400 naming it. PUT replaces them all; PATCH "
        'changes the keys it gives, and null or "" removes one.',
    )
    phone = PhoneField(
        help_text="11 digits starting with 7 (7XXXXXXXXXX); digits 2-4 are the operator code, 900-999. "
        "Taken as people write it too (+7 916 123-45-67, 8 (916) 123-45-67) and stored as 7XXXXXXXXXX."
    )
    timezone = StrictCharField(
        max_length=64,
        default=default_client_timezone,
        validators=[validate_timezone],
        help_text="An IANA time zone name, e.g. Asia/Yekaterinburg; left out: MAILER_DEFAULT_CLIENT_TIMEZONE "
        "(Europe/Moscow unless set).",
    )

    class Meta:
        model = Client
        fields = (
            "id",
            "phone",
            "name",
            "operator_code",
            "tag",
            "timezone",
            "attributes",
            "consent_at",
            "consent_source",
            "undeliverable_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = (
            "operator_code",
            "undeliverable_at",
            "created_at",
            "updated_at",
        )
        extra_kwargs: ClassVar = {
            # The model's tag rule alone (tag_problem), without DRF's own length message beside it.
            "tag": {
                "help_text": "A free label to select clients by (at most 64 characters).",
                "max_length": None,
            },
            "undeliverable_at": {
                "help_text": "Since when the client is left out of audiences: their last "
                "MAILER_UNDELIVERED_LIMIT messages came back undelivered (delivery receipts). Null: "
                "they are not. A manager puts them back on the dashboard's page of numbers that no "
                "longer answer."
            },
            "consent_at": {
                "help_text": "When the client agreed to advertising (ISO 8601; not in the future); null: no "
                "consent on record, so advertising does not reach them (MAILER_CONSENT_REQUIRED). "
                "Set it to null when they withdraw it. Grants and withdrawals are audited."
            },
            "consent_source": {
                "help_text": "How they agreed: 'site form', 'paper form No. 123', a file's name. Required "
                "with consent_at; emptied with it."
            },
            "name": {"help_text": "How texts address the client ({name}); optional, at most 100 characters."},
        }

    def validate_phone(self, value: str) -> str:
        if problem := phone_problem(value):
            raise serializers.ValidationError(problem)
        others = Client.objects.filter(phone=value)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(Client._meta.get_field("phone").error_messages["unique"])
        return value

    def validate_attributes(self, value):
        """Only declared keys (GET /api/v1/client-fields/), string values; each problem under its
        key. A PATCH changes the keys it gives (null or "" removes one); a PUT gives them all."""
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
            if self.partial and self.instance is not None:
                given = set(value) | {k for k, v in self.initial_data["attributes"].items() if v is None}
                value = {k: v for k, v in self.instance.attributes.items() if k not in given} | value
        if problems := attributes_problems(value, ClientField.declared()):
            raise serializers.ValidationError(problems.get("") or {k: [v] for k, v in problems.items()})
        return clean_attributes(value)

    def validate(self, attrs):
        instance = Client()
        if self.instance is not None:
            for name in Client.AUDIT_FIELDS:  # the fields a user sets
                setattr(instance, name, getattr(self.instance, name))
        for name, value in attrs.items():
            setattr(instance, name, value)
        instance.operator_code = operator_code_of(instance.phone)
        _full_clean(instance)
        return attrs


class ClientFieldSerializer(serializers.ModelSerializer):
    class Meta:
        model = ClientField
        fields = ("key", "label")


class FormBooleanField(serializers.BooleanField):
    """true or false, as the schema says: DRF would also take 0, 1, "yes", "on" and the like."""

    TRUE_VALUES: ClassVar = {"true", "True", True}
    FALSE_VALUES: ClassVar = {"false", "False", False}


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false and only that: 0 and 1 are no booleans here (Python's 0 == False)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="CSV or an Excel workbook (.xlsx: its first sheet), with a header row: phone (required), "
        "tag, timezone, opted_out (optional, any order; or in Russian, in any case: Телефон, Метка or Тег, "
        "Часовой пояс, Отписан). CSV as Excel saves it: comma, semicolon or tab (found from the header "
        "line), UTF-8 with or without a byte order mark, else Windows-1251. A phone cell typed as a number "
        "is read as its digits. opted_out yes/1/true puts the phone on the stop list; a blank timezone "
        "gets MAILER_DEFAULT_CLIENT_TIMEZONE (Europe/Moscow). consent_at (Согласие: 01.12.2026, "
        "01.12.2026 10:30 or ISO 8601, not in the future) records the client's consent to advertising, "
        "consent_source (Источник согласия) how it was given (else 'import <file name>'); blank keeps "
        "what the client has. name (Имя, ФИО) and a column per custom field, by its key or its label "
        "(GET /api/v1/client-fields/); a blank cell keeps what the client has. Any other column is an "
        "error that names it."
    )
    all_or_nothing = FormBooleanField(
        default=True,
        help_text="true: write nothing if any row has an error. false: write the valid rows, report the rest.",
    )


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="Row in the file; the header is row 1, 0 = the file as a whole.")
    phone = serializers.CharField(help_text="The row's phone as the file has it (empty for the whole file).")
    field = serializers.CharField(help_text="The column at fault; empty when the whole row is.")
    message = serializers.CharField()


class ImportReportSerializer(serializers.Serializer):
    written = serializers.BooleanField(help_text="Whether anything was saved.")
    created = serializers.IntegerField()
    updated = serializers.IntegerField(
        help_text="Phones already known whose tag, timezone or consent changed."
    )
    unchanged = serializers.IntegerField(help_text="Phones already known with the same tag and timezone.")
    opted_out = serializers.IntegerField(
        help_text="Rows whose opted_out column put the phone on the stop list."
    )
    consented = serializers.IntegerField(
        help_text="Rows whose consent_at recorded the client's consent (a first one, or another date or source)."
    )
    default_timezone = serializers.IntegerField(
        help_text="Rows without a time zone, given MAILER_DEFAULT_CLIENT_TIMEZONE (Europe/Moscow)."
    )
    error_count = serializers.IntegerField()
    errors = RowErrorSerializer(many=True, help_text="The first 1000 errors.")


class ImportSerializer(ImportReportSerializer):
    id = serializers.IntegerField()
    url = serializers.CharField(help_text="Where to follow it (GET).")
    state = serializers.ChoiceField(choices=ImportState.choices)
    percent = serializers.IntegerField(help_text="Progress of the current step (checking, then writing).")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


# The stop list


class StopEntrySerializer(StrictModelSerializer):
    """A phone on the stop list (or taken off it): it gets no message of any mailing."""

    phone = PhoneField(help_text="The phone that opted out, 7XXXXXXXXXX (+7 and 8 forms are taken too).")
    reason = StrictCharField(
        max_length=500, required=False, allow_blank=True, help_text="Why, as the client said it."
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    removed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = StopEntry
        fields = (
            "id",
            "phone",
            "reason",
            "source",
            "created_at",
            "created_by",
            "removed_at",
            "removed_by",
            "removal_reason",
        )
        read_only_fields = ("source", "created_at", "removed_at", "removal_reason")

    def validate_phone(self, value: str) -> str:
        if problem := phone_problem(value):
            raise serializers.ValidationError(problem)
        return value


class StopRemovalSerializer(StrictSerializer):
    reason = StrictCharField(max_length=500, help_text="Why the phone may receive mailings again.")


# Mailings


class MailingFilterSerializer(StrictSerializer):
    """Who receives the mailing: clients matching both lists (an empty list = no restriction).
    Keys other than `tags` and `operator_codes` are refused."""

    tags = serializers.ListField(
        child=StrictCharField(max_length=TAG_MAX, validators=[validate_tag]),
        default=list,
        max_length=1000,
        help_text="Clients with any of these tags; empty = any tag.",
    )
    operator_codes = serializers.ListField(
        child=StrictCharField(
            max_length=3,
            validators=[validate_operator_code],
        ),
        default=list,
        max_length=100,
        help_text="Clients whose operator code is one of these; empty = any operator.",
    )


@extend_schema_field({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "09:00"})
class HourMinuteField(serializers.TimeField):
    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", input_formats=["%H:%M"], **kwargs)


class MailingWindowSerializer(StrictSerializer):
    """Hours of each client's local day in which messages may leave, e.g. 09:00-21:00; an end
    before the start crosses midnight (22:00-06:00). Keys other than `start` and `end` are refused."""

    start = HourMinuteField(help_text="HH:MM, client-local.")
    end = HourMinuteField(help_text="HH:MM, client-local. Before start means the window crosses midnight.")


class SmsLengthSerializer(serializers.Serializer):
    """The text's length as SMS (mailer/sms.py)."""

    encoding = serializers.ChoiceField(
        choices=[sms.GSM7, sms.UCS2],
        help_text="UCS-2 as soon as one character is outside GSM-7 (Cyrillic is).",
    )
    characters = serializers.IntegerField()
    parts = serializers.IntegerField(
        help_text="SMS parts per message: 160/153 characters each in GSM-7, 70/67 in UCS-2."
    )


class ApprovalSerializer(serializers.ModelSerializer):
    """A second person's approval of a big mailing (MAILER_APPROVAL_ABOVE): it starts only while
    `state` is not_needed or approved."""

    state = serializers.ChoiceField(
        source="approval",
        choices=Approval.choices,
        help_text="not_needed, waiting (for a second person: it does not start), approved, or "
        "refused (it does not start; a change to its text, kind or filter asks again).",
    )
    sms = serializers.IntegerField(
        source="approval_sms",
        allow_null=True,
        help_text="SMS (text parts times the clients it reaches) counted when approval was asked; "
        "null when none was.",
    )
    asked_by = serializers.SlugRelatedField(
        source="approval_asked_by",
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Username whose save asked for approval (they may not give it, nor may the author).",
    )
    decided_by = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Username who approved or refused it.",
    )
    decided_at = serializers.DateTimeField(allow_null=True, help_text="When it was approved or refused.")
    refusal_reason = serializers.CharField(help_text="Why it was refused; empty otherwise.")

    class Meta:
        model = Mailing
        fields = ("state", "sms", "asked_by", "decided_by", "decided_at", "refusal_reason")


class RefusalSerializer(StrictSerializer):
    reason = StrictCharField(max_length=REFUSAL_REASON_MAX, help_text="Why the mailing is refused.")


# Model errors on these fields are reported under the API's names.
_MAILING_FIELDS = {
    "filter_tags": "filter",
    "filter_operator_codes": "filter",
    "window_start": "window",
    "window_end": "window",
}


class MailingSerializer(StrictModelSerializer):
    filter = MailingFilterSerializer(
        required=False,
        help_text="Who receives it. Both lists given = both must match. Omitted on create = everyone.",
    )
    window = MailingWindowSerializer(
        required=False,
        allow_null=True,
        help_text="Hours of the client's local day in which messages may be sent; null = any time.",
    )
    created_by = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Username of its author, if still there.",
    )
    sms = serializers.SerializerMethodField(
        help_text="What the text takes as SMS; MAILER_MAX_PARTS caps the parts."
    )
    track_links = StrictBooleanField(
        required=False,
        help_text="true (the default): each http(s) address of the text is sent as MAILER_LINK_BASE/<code>, "
        "a code of the message's own, whose clicks are counted; false: the addresses go as written.",
    )
    approval = ApprovalSerializer(
        source="*",
        read_only=True,
        help_text="Whether it waits for a second person's approval (MAILER_APPROVAL_ABOVE); "
        "POST approve/ or refuse/ decides.",
    )

    class Meta:
        model = Mailing
        fields = (
            "id",
            "text",
            "kind",
            "sms",
            "start_at",
            "end_at",
            "filter",
            "window",
            "track_links",
            "state",
            "approval",
            "created_by",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        )
        read_only_fields = (
            "state",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        )
        extra_kwargs: ClassVar = {
            "text": {"help_text": "The message text, at most 1000 characters."},
            "kind": {
                "help_text": "advertising (the default: only clients with consent, never in quiet "
                "hours) or service (not advertising: consent is not asked)."
            },
            "start_at": {"help_text": "When sending may begin (ISO 8601 with time zone)."},
            "end_at": {"help_text": "No message leaves after this moment; must be after start_at."},
        }

    @extend_schema_field(SmsLengthSerializer)
    def get_sms(self, instance: Mailing) -> dict:
        return sms.measure(instance.as_measured()).as_dict()

    def to_representation(self, instance: Mailing):
        data = super().to_representation(instance)
        data["filter"] = {"tags": instance.filter_tags, "operator_codes": instance.filter_operator_codes}
        data["window"] = (
            {"start": instance.window_start.strftime("%H:%M"), "end": instance.window_end.strftime("%H:%M")}
            if instance.has_window
            else None
        )
        return {name: data[name] for name in self.Meta.fields}

    def validate(self, attrs):
        if "filter" in attrs:
            # A filter object replaces the whole filter: a missing list means no restriction.
            flt = attrs.pop("filter")
            attrs["filter_tags"] = flt.get("tags", [])
            attrs["filter_operator_codes"] = flt.get("operator_codes", [])
        if "window" in attrs:
            window = attrs.pop("window")
            attrs["window_start"] = window.get("start") if window else None
            attrs["window_end"] = window.get("end") if window else None
        instance = Mailing()
        if self.instance is not None:
            for f in Mailing.AUDIT_FIELDS:  # the fields a user sets
                setattr(instance, f, getattr(self.instance, f))
        for name, value in attrs.items():
            setattr(instance, name, value)
        _full_clean(instance, _MAILING_FIELDS, exclude=["created_by", "state"])
        return attrs


class ClientRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Client
        fields = (
            "id",
            "phone",
        )


class MessageSerializer(serializers.ModelSerializer):
    client = ClientRefSerializer(read_only=True, allow_null=True, help_text="Null if the client was deleted.")
    text = serializers.CharField(
        source="carried_text",
        read_only=True,
        allow_null=True,
        help_text="The text the gateway was given for it: the client's own of a personal text (variables), "
        "else the mailing's text then (it may have changed since); null before the first attempt.",
    )

    class Meta:
        model = Message
        fields = (
            "id",
            "client",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "sent_at",
            "text",
            "delivery_status",
            "delivered_at",
            "delivery_error",
        )
        extra_kwargs = {
            "delivery_status": {
                "help_text": "What the gateway's delivery receipt said; null before one came."
            },
            "delivered_at": {"help_text": "When that happened, as the receipt said."},
            "delivery_error": {"help_text": "The gateway's words on why it was not delivered."},
        }


# Statistics


class CountsSerializer(serializers.Serializer):
    """Message counts by status; every status is present, zeros included."""

    pending = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    expired = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    total = serializers.IntegerField()


assert set(CountsSerializer._declared_fields) == {*stats.STATUSES, "total"}, "a status is missing"


SMS_SENT_HELP = "SMS parts delivered (what the gateway bills): each message sent times its own text's parts."


NO_CONSENT_HELP = (
    "Clients of the filter left out for want of consent (advertising, MAILER_CONSENT_REQUIRED), and "
    "messages cancelled at send time because consent was withdrawn."
)

CAP_HELD_HELP = (
    "Messages waiting now because MAILER_FREQUENCY_CAP allows their client no more for the moment."
)
CAP_EXPIRED_HELP = (
    "Messages expired because MAILER_FREQUENCY_CAP allowed their client no more before the end."
)


CLICKS_HELP = "Clicks on its links (track_links), repeats included."
CLICKERS_HELP = "Clients who clicked its links at least once."
UNSUBSCRIBED_HELP = "Clients who put their phone on the stop list through its {unsubscribe} link."
CLICK_RATE_HELP = "Clients who clicked of the messages accepted by the gateway, in percent; null before any."
DELIVERED_HELP = "Messages whose delivery receipt said delivered."
UNDELIVERED_HELP = (
    "Messages whose receipt said they did not reach the client: undelivered, expired or rejected."
)
NO_RECEIPT_HELP = "Messages accepted by the gateway with no receipt yet."
DELIVERY_RATE_HELP = (
    "Delivered of the messages accepted by the gateway, in percent; null before the first receipt."
)


class MailingCountsSerializer(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField()
    clicks = serializers.IntegerField(source="clicks_count", help_text=CLICKS_HELP)
    clickers = serializers.IntegerField(source="clickers_count", help_text=CLICKERS_HELP)
    unsubscribed = serializers.IntegerField(source="unsubscribed_count", help_text=UNSUBSCRIBED_HELP)
    delivered = serializers.IntegerField(source="delivered_count", help_text=DELIVERED_HELP)
    undelivered = serializers.IntegerField(source="undelivered_count", help_text=UNDELIVERED_HELP)
    no_receipt = serializers.SerializerMethodField(help_text=NO_RECEIPT_HELP)
    delivery_rate = serializers.SerializerMethodField(help_text=DELIVERY_RATE_HELP)
    no_consent = serializers.IntegerField(source="no_consent_count", help_text=NO_CONSENT_HELP)
    cap_expired = serializers.IntegerField(source="cap_expired_count", help_text=CAP_EXPIRED_HELP)
    sms_parts = serializers.IntegerField(help_text="SMS parts per message of its current text.")
    sms_sent = serializers.IntegerField(help_text=SMS_SENT_HELP)

    class Meta:
        model = Mailing
        fields = (
            "id",
            "text",
            "kind",
            "state",
            "start_at",
            "end_at",
            "counts",
            "no_consent",
            "cap_expired",
            "sms_parts",
            "sms_sent",
            "clicks",
            "clickers",
            "unsubscribed",
            "delivered",
            "undelivered",
            "no_receipt",
            "delivery_rate",
        )

    def get_no_receipt(self, mailing) -> int:
        return stats.annotated_delivery(mailing)["no_receipt"]

    def get_delivery_rate(self, mailing) -> float | None:
        return stats.annotated_delivery(mailing)["delivery_rate"]

    @extend_schema_field(CountsSerializer)
    def get_counts(self, mailing) -> dict[str, int]:
        # Annotated by stats.with_counts: no query per mailing.
        return stats.annotated_counts(mailing)


class StatsSerializer(serializers.Serializer):
    totals = CountsSerializer(help_text="Over all mailings listed.")
    sms_sent = serializers.IntegerField(help_text=f"Over all mailings listed. {SMS_SENT_HELP}")
    mailings = MailingCountsSerializer(many=True)


class TimingSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField(allow_null=True, help_text="When the engine started the mailing.")
    finished_at = serializers.DateTimeField(allow_null=True)
    first_sent_at = serializers.DateTimeField(allow_null=True, help_text="When the first message left.")
    last_sent_at = serializers.DateTimeField(allow_null=True)
    messages_per_minute = serializers.FloatField(
        allow_null=True, help_text="Sent messages per minute between the first and the last; null if unknown."
    )


class OperatorDeliverySerializer(serializers.Serializer):
    operator_code = serializers.CharField(help_text="The three digits after 7 of the clients' phones.")
    accepted = serializers.IntegerField(help_text="Messages accepted by the gateway.")
    delivered = serializers.IntegerField(help_text=DELIVERED_HELP)
    undelivered = serializers.IntegerField(help_text=UNDELIVERED_HELP)
    no_receipt = serializers.IntegerField(help_text=NO_RECEIPT_HELP)
    delivery_rate = serializers.FloatField(allow_null=True, help_text=DELIVERY_RATE_HELP)


class UndeliveredReasonSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    error = serializers.CharField(help_text="The gateway's words, as its receipts gave them (may be empty).")
    messages = serializers.IntegerField()


class MailingStatsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Mailing._meta.get_field("state").choices)
    counts = CountsSerializer()
    no_consent = serializers.IntegerField(help_text=NO_CONSENT_HELP)
    cap_held = serializers.IntegerField(help_text=CAP_HELD_HELP)
    cap_expired = serializers.IntegerField(help_text=CAP_EXPIRED_HELP)
    sms_parts = serializers.IntegerField(help_text="SMS parts per message of its current text.")
    sms_sent = serializers.IntegerField(help_text=SMS_SENT_HELP)
    clicks = serializers.IntegerField(help_text=CLICKS_HELP)
    clickers = serializers.IntegerField(help_text=CLICKERS_HELP)
    click_rate = serializers.FloatField(allow_null=True, help_text=CLICK_RATE_HELP)
    unsubscribed = serializers.IntegerField(help_text=UNSUBSCRIBED_HELP)
    delivered = serializers.IntegerField(help_text=DELIVERED_HELP)
    undelivered = serializers.IntegerField(help_text=UNDELIVERED_HELP)
    no_receipt = serializers.IntegerField(help_text=NO_RECEIPT_HELP)
    delivery_rate = serializers.FloatField(allow_null=True, help_text=DELIVERY_RATE_HELP)
    operators = OperatorDeliverySerializer(
        many=True, help_text="The same split per operator code, lowest rate first."
    )
    undelivered_reasons = UndeliveredReasonSerializer(
        many=True, help_text="Why messages were not delivered, grouped, the commonest first (at most 20)."
    )
    timing = TimingSerializer()


class ReceiptSerializer(serializers.Serializer):
    """One delivery receipt as a gateway posts it: for the schema only. What is taken is
    receipts.check's, which the view and the WSGI fast path both use (schemathesis checks that the
    two agree)."""

    id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The message id we sent.")
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    at = serializers.DateTimeField(help_text="When it happened, ISO 8601 with its offset (Z or +03:00).")
    error = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=f"The gateway's words on why it was not delivered; kept up to {receipts.ERROR_MAX} characters.",
    )


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


# The audit log


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor_name", help_text="Username; empty for the system (the engine)."
    )
    changes = serializers.JSONField(help_text="The fields that changed: {field: [before, after]}.")

    class Meta:
        model = AuditEntry
        fields = ("id", "at", "actor", "via", "action", "object_type", "object_id", "object_repr", "changes")
