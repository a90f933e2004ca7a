"""The OpenAPI description of the REST API (drf-spectacular): summaries, examples, error answers.

Kept apart from mailer/api/views.py so that a view reads as a view; each view names its entry here
(`@schema.clients`, `@schema.import_csv`, ...).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from mailer.api import serializers as s


class RefuseUnknownKeysExtension(OpenApiSerializerExtension):
    """Request bodies of serializers that refuse unknown keys say so: `additionalProperties: false`."""

    target_class = s.RefuseUnknownKeys
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


# Errors every endpoint may answer; the 400 body names the fields at fault.
_DETAIL_EXAMPLE = {"detail": "Authentication credentials were not provided."}
AUTH_ERRORS = {
    401: OpenApiResponse(
        s.DetailSerializer,
        "No credentials, or a bad, revoked or inactive user's token.",
        examples=[OpenApiExample("No credentials", _DETAIL_EXAMPLE, response_only=True, status_codes=[401])],
    ),
    403: OpenApiResponse(
        s.DetailSerializer,
        "The user's role does not allow this (viewers only read; managers and admins also change).",
        examples=[
            OpenApiExample(
                "Read-only role",
                {"detail": "You do not have permission to perform this action."},
                response_only=True,
                status_codes=[403],
            )
        ],
    ),
}
NOT_FOUND = {404: OpenApiResponse(s.DetailSerializer, "No such object, or a page past the end of the list.")}
BAD_INPUT = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        "Invalid input: an object mapping each field at fault to a list of messages "
        '(`"detail"` for a body that is not valid JSON).',
        examples=[
            OpenApiExample(
                "Bad phone",
                {"phone": ["Phone must be 11 digits starting with 7: 7XXXXXXXXXX."]},
                response_only=True,
                status_codes=[400],
            ),
            OpenApiExample(
                "Unknown filter key",
                {"filter": {"tag": ["Unknown key 'tag'; allowed: tags, operator_codes."]}},
                response_only=True,
                status_codes=[400],
            ),
        ],
    )
}
CONFLICT = {
    409: OpenApiResponse(
        s.DetailSerializer,
        "The mailing's state does not allow this.",
        examples=[
            OpenApiExample(
                "Finished",
                {"detail": "A finished mailing can't be changed that way."},
                response_only=True,
                status_codes=[409],
            )
        ],
    )
}


CLIENT_EXAMPLE = OpenApiExample(
    "A client",
    {
        "phone": "79161234567",
        "name": "Анна",
        "tag": "vip",
        "timezone": "Europe/Moscow",
    },
    request_only=True,
)


client_fields = extend_schema(
    tags=["clients"],
    summary="The clients' custom fields",
    description=(
        "The keys a client's `attributes` may hold and texts may use ({city}, {city|fallback}), "
        "with their labels. Admins declare them on the dashboard (Clients → Client fields)."
    ),
    responses={200: s.ClientFieldSerializer(many=True), **AUTH_ERRORS},
)
clients = extend_schema_view(
    list=extend_schema(
        summary="List clients",
        responses={200: s.ClientSerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    ),
    create=extend_schema(
        summary="Create a client",
        examples=[CLIENT_EXAMPLE],
        responses={201: s.ClientSerializer, **BAD_INPUT, **AUTH_ERRORS},
    ),
    retrieve=extend_schema(
        summary="Get a client", responses={200: s.ClientSerializer, **AUTH_ERRORS, **NOT_FOUND}
    ),
    update=extend_schema(
        summary="Replace a client",
        examples=[CLIENT_EXAMPLE],
        responses={200: s.ClientSerializer, **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change some fields of a client",
        responses={200: s.ClientSerializer, **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a client",
        description="Its messages stay in the statistics, without the client.",
        responses={204: None, **AUTH_ERRORS, **NOT_FOUND},
    ),
)


import_csv = extend_schema(
    summary="Import clients from CSV",
    description=(
        "Upload a CSV file or an Excel workbook (`.xlsx`, its first sheet; multipart field `file`) "
        "with a header row: `phone` (required), `tag`, `timezone`, `opted_out`, `consent_at`, "
        "`consent_source` (optional; the Russian names `Телефон`, `Метка`, `Часовой пояс`, `Отписан`, "
        "`Согласие`, `Источник согласия` too). `consent_at` records when the client agreed to "
        "advertising (a bad or future date is an error of its row), `consent_source` how (else "
        "`import <file name>`), counted in `consented`; blank keeps what the client has. A CSV file may be as Excel saves "
        "it: `,` `;` or tab, UTF-8 (a BOM allowed) or Windows-1251. A blank `timezone` gets "
        "`MAILER_DEFAULT_CLIENT_TIMEZONE` (Europe/Moscow), counted in `default_timezone`. Rows are "
        "numbered as in a spreadsheet: the header is row 1.\n\n"
        "* A phone that appears twice in the file: the later row is an error.\n"
        "* A phone already in the database: that client's tag and timezone are updated.\n"
        "* `all_or_nothing=true` (default): any error and nothing is written (`written: false`).\n"
        "* `all_or_nothing=false`: the valid rows are written, the others reported.\n\n"
        "The file (at most `MAILER_IMPORT_MAX_MB`, 50 MB by default) is kept and imported by a "
        "worker: the answer is 202 with the import, and `Location` (also `url`) is where to follow "
        "it: `state` goes queued, checking, writing, then done (`written: true`) or failed "
        "(nothing written: `errors` says why). A 400 with the report's shape answers a missing field "
        "or a file over a cap (field `file`, the message naming the cap): its size, a line over "
        "`MAILER_IMPORT_MAX_LINE` bytes (64 KiB by default, the line named) or a header of more than "
        "`MAILER_IMPORT_MAX_COLUMNS` columns (50), a workbook over its unpacked bounds (a zip bomb), "
        "or a file that is neither CSV text nor `.xlsx` (an old `.xls` is named as such). An import whose worker died three times fails "
        "saying so. Needs the add and change client permissions (manager)."
    ),
    request={"multipart/form-data": s.ImportRequestSerializer},
    responses={
        202: s.ImportSerializer,
        400: OpenApiResponse(
            s.ImportReportSerializer,
            "Nothing stored: a field of the form is missing or wrong, or the file is over a cap.",
            examples=[
                OpenApiExample(
                    "Bad rows",
                    {
                        "written": False,
                        "created": 0,
                        "updated": 0,
                        "unchanged": 0,
                        "opted_out": 0,
                        "consented": 0,
                        "default_timezone": 0,
                        "error_count": 2,
                        "errors": [
                            {"row": 3, "field": "phone", "message": "Duplicate of row 2."},
                            {
                                "row": 5,
                                "field": "timezone",
                                "message": "'Mars/Base' is not a known IANA time zone.",
                            },
                        ],
                    },
                    response_only=True,
                    status_codes=[400],
                )
            ],
        ),
        **AUTH_ERRORS,
    },
)
import_status = extend_schema(
    summary="Follow a client import",
    description="Its state, progress (`percent` of the current step) and report: while it runs, "
    "the counts grow; once `done` they say what was written, once `failed` nothing was.",
    responses={200: s.ImportSerializer, **AUTH_ERRORS, **NOT_FOUND},
)


MAILING_EXAMPLE = OpenApiExample(
    "Evening mailing to VIPs on two operators",
    {
        "text": "Our shop is open late tonight!",
        "start_at": "2026-12-01T09:00:00Z",
        "end_at": "2026-12-01T21:00:00Z",
        "filter": {"tags": ["vip"], "operator_codes": ["916", "926"]},
        "window": {"start": "10:00", "end": "20:00"},
    },
    request_only=True,
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description='The ETag a GET gave, e.g. `"3"`: the change is refused (412) if the mailing changed since.',
)
STALE = {
    412: OpenApiResponse(
        s.DetailSerializer,
        "Someone changed the mailing after the revision named in If-Match.",
        examples=[
            OpenApiExample(
                "Changed meanwhile",
                {"detail": "Mailing #7 was changed by someone else since you opened it (revision 3, now 4)."},
                response_only=True,
                status_codes=[412],
            )
        ],
    )
}
MAILING_RESPONSES = {200: s.MailingSerializer, **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND}


def control(verb: str, allowed: str):
    return extend_schema(
        summary=f"{verb.capitalize()} a mailing",
        description=f"Allowed from: {allowed}. The sending engine picks the change up by itself.",
        request=None,
        responses={200: s.MailingSerializer, **AUTH_ERRORS, **NOT_FOUND, **CONFLICT},
    )


NOT_YOURS = {
    403: OpenApiResponse(
        s.DetailSerializer,
        "The user may not approve mailings (viewers), or wrote the mailing or the change that asked "
        "for approval: a second person approves it.",
        examples=[
            OpenApiExample(
                "The author",
                {"detail": "Mailing #7 is yours (you wrote it or changed it): a second person approves it."},
                response_only=True,
                status_codes=[403],
            )
        ],
    )
}
NOTHING_WAITS = {
    409: OpenApiResponse(
        s.DetailSerializer,
        "The mailing does not wait for approval (it needs none, was decided already, or is over).",
        examples=[
            OpenApiExample(
                "Approved already",
                {"detail": "Mailing #7 does not wait for approval (approved, scheduled)."},
                response_only=True,
                status_codes=[409],
            )
        ],
    )
}
_DECISION = (
    " Only a mailing that waits for approval (`approval.state` waiting): one of more SMS than "
    "`MAILER_APPROVAL_ABOVE`, counted as its text's parts times the clients it reaches, which does "
    "not start until a second person (a manager or an admin, never its author nor whoever made the "
    "change that asked) approves it. With `If-Match`, refused with 412 if the mailing was saved "
    "since that revision: you decide on what you read."
)
approve = extend_schema(
    summary="Approve a mailing",
    description="It starts at the engine's next tick if its time has come (and not gone), else at "
    "`start_at`; one that was running goes on." + _DECISION,
    request=None,
    parameters=[IF_MATCH],
    responses={200: s.MailingSerializer, **AUTH_ERRORS, **NOT_YOURS, **NOT_FOUND, **NOTHING_WAITS, **STALE},
)
refuse = extend_schema(
    summary="Refuse a mailing",
    description="Say why (`reason`, required: 400 without it): it does not start; a change to its "
    "text, kind or filter asks for approval again." + _DECISION,
    request=s.RefusalSerializer,
    examples=[OpenApiExample("Why", {"reason": "Wrong price in the text"}, request_only=True)],
    parameters=[IF_MATCH],
    responses={
        200: s.MailingSerializer,
        **BAD_INPUT,
        **AUTH_ERRORS,
        **NOT_YOURS,
        **NOT_FOUND,
        **NOTHING_WAITS,
        **STALE,
    },
)


mailings = extend_schema_view(
    list=extend_schema(
        summary="List mailings",
        responses={200: s.MailingSerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    ),
    create=extend_schema(
        summary="Create a mailing",
        description=(
            "It starts by itself at `start_at` (at once if that has passed) and no message leaves after "
            "`end_at`. `filter` selects clients (empty lists = no restriction; both lists = both must match); "
            "`window` limits sending to hours of each client's local day. Unknown keys in `filter` or "
            "`window` are refused with 400."
        ),
        examples=[MAILING_EXAMPLE],
        responses={201: s.MailingSerializer, **BAD_INPUT, **AUTH_ERRORS},
    ),
    retrieve=extend_schema(
        summary="Get a mailing",
        description="The `ETag` header names its revision; send it back as `If-Match` when changing it.",
        responses={200: s.MailingSerializer, **AUTH_ERRORS, **NOT_FOUND},
    ),
    update=extend_schema(
        summary="Replace a mailing",
        description="Refused with 409 once the mailing is finished or cancelled. A new filter of a running "
        "mailing adds newly matching clients and cancels pending messages of those no longer matching. "
        "With `If-Match`, refused with 412 if someone changed it since.",
        examples=[MAILING_EXAMPLE],
        parameters=[IF_MATCH],
        responses={**MAILING_RESPONSES, **CONFLICT, **STALE},
    ),
    partial_update=extend_schema(
        summary="Change some fields of a mailing",
        description="As PUT; a `filter` object given replaces the whole filter (a missing list = no restriction).",
        parameters=[IF_MATCH],
        responses={**MAILING_RESPONSES, **CONFLICT, **STALE},
    ),
    destroy=extend_schema(
        summary="Delete a mailing",
        description="Deletes it with its messages and their statistics. Refused with 409 while it is "
        "running (pause or cancel it first), and with 412 for a stale `If-Match`.",
        parameters=[IF_MATCH],
        responses={204: None, **AUTH_ERRORS, **NOT_FOUND, **CONFLICT, **STALE},
    ),
)


mailing_stats = extend_schema(
    tags=["statistics"],
    summary="Statistics of one mailing",
    description=(
        "Message counts by status, what the guardrails kept, clicks, delivery receipts (overall, per "
        "operator code and the reasons of those not delivered) and the sending timing."
    ),
    responses={200: s.MailingStatsSerializer, **AUTH_ERRORS, **NOT_FOUND},
    examples=[
        OpenApiExample(
            "Half sent",
            {
                "id": 7,
                "state": "running",
                "counts": {
                    "pending": 500,
                    "sent": 480,
                    "failed": 15,
                    "expired": 0,
                    "cancelled": 5,
                    "total": 1000,
                },
                "sms_parts": 2,
                "sms_sent": 960,
                "delivered": 450,
                "undelivered": 12,
                "no_receipt": 18,
                "delivery_rate": 93.8,
                "operators": [
                    {
                        "operator_code": "912",
                        "accepted": 80,
                        "delivered": 70,
                        "undelivered": 10,
                        "no_receipt": 0,
                        "delivery_rate": 87.5,
                    },
                    {
                        "operator_code": "916",
                        "accepted": 400,
                        "delivered": 380,
                        "undelivered": 2,
                        "no_receipt": 18,
                        "delivery_rate": 95.0,
                    },
                ],
                "undelivered_reasons": [
                    {"status": "rejected", "error": "sender name not registered", "messages": 10},
                    {"status": "expired", "error": "", "messages": 2},
                ],
                "timing": {
                    "started_at": "2026-12-01T09:00:02Z",
                    "finished_at": None,
                    "first_sent_at": "2026-12-01T09:00:03Z",
                    "last_sent_at": "2026-12-01T09:04:03Z",
                    "messages_per_minute": 120.0,
                },
            },
            response_only=True,
        )
    ],
)


mailing_messages = extend_schema(
    tags=["mailings"],
    summary="Messages of a mailing",
    description="One per client of the audience, oldest first, with its delivery status.",
    responses={200: s.MessageSerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
)


all_stats = extend_schema(
    tags=["statistics"],
    summary="Statistics of all mailings",
    description=(
        "Every mailing (newest first) with its message counts by status, and the totals over all of "
        "them. A constant number of queries, however many mailings there are."
    ),
    responses={200: s.StatsSerializer, **AUTH_ERRORS},
    examples=[
        OpenApiExample(
            "Two mailings",
            {
                "totals": {
                    "pending": 0,
                    "sent": 15,
                    "failed": 1,
                    "expired": 0,
                    "cancelled": 0,
                    "total": 16,
                },
                "sms_sent": 25,
                "mailings": [
                    {
                        "id": 2,
                        "text": "Sale!",
                        "state": "finished",
                        "start_at": "2026-12-01T09:00:00Z",
                        "end_at": "2026-12-01T21:00:00Z",
                        "counts": {
                            "pending": 0,
                            "sent": 10,
                            "failed": 0,
                            "expired": 0,
                            "cancelled": 0,
                            "total": 10,
                        },
                        "sms_parts": 2,
                        "sms_sent": 20,
                    },
                    {
                        "id": 1,
                        "text": "Hello",
                        "state": "finished",
                        "start_at": "2026-11-01T09:00:00Z",
                        "end_at": "2026-11-01T21:00:00Z",
                        "counts": {
                            "pending": 0,
                            "sent": 5,
                            "failed": 1,
                            "expired": 0,
                            "cancelled": 0,
                            "total": 6,
                        },
                        "sms_parts": 1,
                        "sms_sent": 5,
                    },
                ],
            },
            response_only=True,
        )
    ],
)


stop_list = extend_schema_view(
    list=extend_schema(
        summary="The stop list",
        description="Phones that opted out, newest first: standing ones unless `state` says otherwise.",
        responses={200: s.StopEntrySerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    ),
    create=extend_schema(
        summary="Put a phone on the stop list",
        description="201 with the new entry; 200 with the standing one if the phone is on the list already.",
        examples=[
            OpenApiExample(
                "Opted out by phone", {"phone": "79161234567", "reason": "asked by phone"}, request_only=True
            )
        ],
        responses={201: s.StopEntrySerializer, 200: s.StopEntrySerializer, **BAD_INPUT, **AUTH_ERRORS},
    ),
    retrieve=extend_schema(
        summary="Whether a phone is on the stop list",
        responses={200: s.StopEntrySerializer, **AUTH_ERRORS, **NOT_FOUND},
    ),
    remove=extend_schema(
        summary="Take a phone off the stop list",
        description="The entry is kept, with who removed it, when and why.",
        request=s.StopRemovalSerializer,
        responses={200: s.StopEntrySerializer, **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    ),
)


audit = extend_schema(
    tags=["audit"],
    summary="The audit log (admins)",
    description=(
        "Who created, edited, started, paused, resumed, cancelled or deleted what, and when, with "
        "the fields that changed, newest first. Each entry was written in the same transaction as "
        "its change. `via`: ui, api, cli, import or engine."
    ),
    responses={200: s.AuditEntrySerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
)


receipts = extend_schema(
    tags=["gateway"],
    summary="Delivery receipts from the SMS gateway",
    description=(
        "For the gateway, not for people: what became of the messages it accepted. "
        "`Authorization: Bearer <MAILER_RECEIPT_TOKEN>` (404 while it is not set). The body is one "
        "receipt or a list of 1 to 1,000, taken all or none: a bad item is named by its index in the "
        "400 and nothing of that batch is written. Safe to repeat and to send out of order: each "
        "message keeps the receipt with the latest `at`. Receipts for ids we never sent are counted "
        "in the answer and logged, not refused. docs/api.md has the whole contract."
    ),
    request=s.ReceiptSerializer(many=True, min_length=1, max_length=1000),
    responses={
        200: OpenApiResponse(
            inline_serializer(
                "ReceiptsTaken",
                {
                    "received": serializers.IntegerField(help_text="Receipts in the request."),
                    "unknown": serializers.IntegerField(
                        help_text="Of their message ids, those we never sent."
                    ),
                    "unknown_ids": serializers.ListField(
                        child=serializers.IntegerField(), help_text="Those ids (the first 100)."
                    ),
                },
            ),
            "Taken: applied within seconds.",
        ),
        400: OpenApiResponse(
            OpenApiTypes.OBJECT,
            "Not valid: for a list, `items` maps each bad item's index to its fields' messages.",
            examples=[
                OpenApiExample(
                    "A bad item",
                    {
                        "detail": "Not valid: items 1 (counted from 0). Nothing of this batch was written.",
                        "items": {"1": {"status": ["One of: delivered, undelivered, expired, rejected."]}},
                    },
                    response_only=True,
                    status_codes=[400],
                )
            ],
        ),
        401: OpenApiResponse(s.DetailSerializer, "No token, or not MAILER_RECEIPT_TOKEN."),
        404: OpenApiResponse(s.DetailSerializer, "Receipts are off: MAILER_RECEIPT_TOKEN is not set."),
    },
    examples=[
        OpenApiExample(
            "Two receipts",
            [
                {"id": 1201, "status": "delivered", "at": "2026-12-01T09:00:07Z"},
                {
                    "id": 1202,
                    "status": "undelivered",
                    "at": "2026-12-01T09:00:09+03:00",
                    "error": "absent subscriber",
                },
            ],
            request_only=True,
        )
    ],
)
