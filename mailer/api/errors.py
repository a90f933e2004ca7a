"""How errors become responses: every failure the API knows about gets a 4xx with a message.

Bodies follow DRF's shape: `{"detail": "..."}` for request-level errors and
`{"field": ["message", ...]}` for invalid input.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from mailer.models import MailingError, SelfApproval

logger = logging.getLogger("mailer.api")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("The request conflicts with the current state of the resource.")
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = gettext_lazy("The resource changed since you read it.")
    default_code = "precondition_failed"


def exception_handler(exc, context):
    if isinstance(exc, SelfApproval):
        exc = exceptions.PermissionDenied(str(exc))  # a second person's act: not its author's
    elif isinstance(exc, MailingError):
        exc = Conflict(str(exc))
    elif isinstance(exc, DjangoValidationError):
        # Model rules (full_clean) that reached the view without passing a serializer.
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    elif isinstance(exc, IntegrityError):
        # A race the validation could not see (e.g. the same phone created twice at once).
        logger.warning("integrity error in the API: %s", exc)
        exc = Conflict(_("The change conflicts with existing data (e.g. a duplicate); nothing was saved."))
    return drf_exception_handler(exc, context)


# Django's own error pages, for what goes wrong before or outside DRF (an oversized body is refused
# when it is read, a crash): the API answers JSON there too. Set as handler400/handler500 in
# mailer/urls.py.
def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    detail = _("Bad request.")
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        detail = _("The request body is larger than %(kb)s KB.") % {"kb": limit // 1024}
    return JsonResponse({"detail": detail}, status=400)


def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse(
        {"detail": _("Server error; it is logged under this response's X-Request-ID.")}, status=500
    )
