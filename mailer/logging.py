"""One log format for web and workers, with the ids that let you follow a mailing, message or client.

Where the ids come from:
- Worker code passes them itself: `logger.info("...", extra={"mailing_id": ..., "message_id": ...})`.
- Web requests: `RequestContextMiddleware` gives every request an id (the `X-Request-ID` header
  when the caller sent a sane one, else a new one; returned in the response) and puts it, the URL
  name and the ids found in the URL kwargs into a context variable. `ContextFilter` (on the
  handler) copies that context onto every record logged while the request runs, so a line logged
  deep inside a view carries `request_id` and e.g. `mailing_id` without passing them around.

URL kwargs convention: `mailing_id`, `message_id`, `client_id` (or `*_pk`) are taken as they are;
a bare `pk` belongs to the object the URL name starts with (`mailing-detail`, `client-edit`,
`message-detail`; DRF router names are `<basename>-detail`).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse

ID_FIELDS = ("request_id", "mailing_id", "message_id", "client_id")

_context: ContextVar[dict[str, object] | None] = ContextVar("mailer_log_context", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra` or the context.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# Extras that are objects, not fields: django.request's `request`, django.server's `server_time`.
_SKIPPED = frozenset({"request", "server_time"})
_NOT_EXTRA = _RECORD_ATTRS | _SKIPPED
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_URL_KWARG_RE = re.compile(r"^(mailing|message|client)_(id|pk)$")
_URL_NAME_RE = re.compile(r"(mailing|message|client)")

access_logger = logging.getLogger("mailer.http")
# Probes and scrapes arrive every few seconds: their access lines would drown the rest.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def log_context() -> dict[str, object]:
    """The fields added to every record logged now (empty outside a request)."""
    return dict(_context.get() or {})


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    """The record's fields beyond the standard ones: `extra=` and the context, ids first."""
    fields = {key: value for key, value in vars(record).items() if key not in _NOT_EXTRA}
    ordered = {key: fields.pop(key) for key in ID_FIELDS if fields.get(key) is not None}
    return ordered | fields


class ContextFilter(logging.Filter):
    """Copies the request context onto each record; a value passed with `extra=` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs 4xx/5xx after the middleware has finished, with the request attached.
        context = _context.get() or getattr(getattr(record, "request", None), "log_context", None) or {}
        for key, value in context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """The usual one-line format, plus ` key=value` for each extra field not already in the text."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        text = record.getMessage()
        pairs = [f"{key}={value}" for key, value in extra_fields(record).items() if f"{key}=" not in text]
        if pairs:
            head = f"{head} {' '.join(pairs)}"
        return head + sep + tail


class JsonFormatter(logging.Formatter):
    """One JSON object per line (LOG_FORMAT=json): time, level, logger, message, the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        entry |= extra_fields(record)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def ids_from_url(url_name: str, kwargs: dict[str, object]) -> dict[str, object]:
    """mailing_id / message_id / client_id found in resolved URL kwargs (see the module docstring)."""
    ids: dict[str, object] = {}
    for key, value in kwargs.items():
        if match := _URL_KWARG_RE.match(key):
            ids[f"{match[1]}_id"] = value
    if "pk" in kwargs and (match := _URL_NAME_RE.search(url_name or "")):
        ids.setdefault(f"{match[1]}_id", kwargs["pk"])
    return ids


class RequestContextMiddleware:
    """Request id in, request id out, ids from the URL into the log context, one access line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        request.log_context = {"request_id": request_id}  # type: ignore[attr-defined]
        token = _context.set(request.log_context)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            access_logger.log(
                logging.DEBUG if request.path in QUIET_PATHS else logging.INFO,
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return response
        finally:
            _context.reset(token)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        match = request.resolver_match
        url_name = match.view_name if match else ""
        request.log_context = log_context() | {"view": url_name} | ids_from_url(url_name, view_kwargs)
        _context.set(request.log_context)
