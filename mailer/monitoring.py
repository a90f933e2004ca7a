"""What operators and probes look at: /metrics, /healthz, /readyz, and the web app's request metrics.

Two kinds of metrics (every one is listed in docs/metrics.md):
- counted by processes (mailer/metrics.py): with PROMETHEUS_MULTIPROC_DIR set every process writes
  its values to files there and /metrics sums them over all processes sharing the directory;
- read from the database at scrape time (`DatabaseCollector`): messages, mailings, queue, breaker,
  worker heartbeats. Every process and every replica reads the same rows, so they always agree.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from mailer.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from mailer.models import (
    GatewayState,
    Mailing,
    MailingState,
    Message,
    MessageStatus,
    Report,
    WorkerHeartbeat,
)

logger = logging.getLogger(__name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


class HttpMetricsMiddleware:
    """Counts requests by method and status class and times them by URL name (not path: bounded)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        count_request(
            request.method, response.status_code, match.view_name if match else "unresolved", started
        )
        return response


def count_request(method: str | None, status: int, view: str, started: float) -> None:
    """A request answered, in the metrics: counted by method and status class, timed (since
    `started`, a perf_counter) by URL name."""
    method = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(method=method, status=f"{status // 100}xx").inc()
    HTTP_REQUEST_SECONDS.labels(view=view).observe(time.perf_counter() - started)


def live_heartbeat_seconds() -> int:
    """A worker slot counts as live when it has beaten within this many seconds."""
    return settings.MAILER_READY_HEARTBEAT_SECONDS or 120


class DatabaseCollector:
    """Gauges computed from the database when /metrics is scraped (a handful of aggregate queries)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mailer_database_up", "1 when the database answered this scrape.")
        try:
            metrics = list(self._from_database())
        except DatabaseError:
            logger.exception("metrics: database query failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _from_database(self) -> Iterator[Metric]:
        now = timezone.now()

        messages = GaugeMetricFamily("mailer_messages", "Messages by status.", labels=["status"])
        by_status = dict(Message.objects.values_list("status").annotate(n=Count("id")).order_by())
        for status in MessageStatus.values:
            messages.add_metric([status], by_status.get(status, 0))
        yield messages

        mailings = GaugeMetricFamily("mailer_mailings", "Mailings by state.", labels=["state"])
        by_state = dict(Mailing.objects.values_list("state").annotate(n=Count("id")).order_by())
        for state in MailingState.values:
            mailings.add_metric([state], by_state.get(state, 0))
        yield mailings

        # A WHERE (not an aggregate filter), so the partial index on pending messages does the work.
        queue = Message.objects.due(now).aggregate(due=Count("id"), oldest=Min("next_attempt_at"))
        yield GaugeMetricFamily(
            "mailer_queue_pending",
            "Pending messages, due or not.",
            value=by_status.get(MessageStatus.PENDING, 0),
        )
        yield GaugeMetricFamily(
            "mailer_queue_due",
            "Pending messages whose time has come and that nobody holds.",
            value=queue["due"],
        )
        oldest = (now - queue["oldest"]).total_seconds() if queue["oldest"] else 0
        yield GaugeMetricFamily(
            "mailer_queue_oldest_due_age_seconds",
            "How long the oldest due message has been waiting (0 when none is due).",
            value=max(oldest, 0),
        )

        state = GatewayState.objects.filter(pk=1).first() or GatewayState()
        yield GaugeMetricFamily(
            "mailer_provider_breaker_open",
            "1 while the circuit breaker holds sending back.",
            value=int(state.breaker_is_open(now)),
        )
        yield GaugeMetricFamily(
            "mailer_provider_consecutive_failures",
            "Failed gateway requests in a row.",
            value=state.consecutive_failures,
        )
        yield GaugeMetricFamily(
            "mailer_provider_auth_error",
            "1 while sending is stopped because the gateway refused the token.",
            value=int(bool(state.auth_error)),
        )
        if state.last_success_at:
            yield GaugeMetricFamily(
                "mailer_provider_last_success_timestamp_seconds",
                "When the gateway last accepted a message.",
                value=state.last_success_at.timestamp(),
            )

        ages = GaugeMetricFamily(
            "mailer_worker_heartbeat_age_seconds",
            "Seconds since each sender process last beat (slot: host:worker/number).",
            labels=["slot"],
        )
        live = 0
        threshold = live_heartbeat_seconds()
        for owner, beat_at in WorkerHeartbeat.objects.values_list("owner", "beat_at").order_by("owner"):
            age = max((now - beat_at).total_seconds(), 0)
            ages.add_metric([owner], age)
            live += age <= threshold
        yield ages
        yield GaugeMetricFamily(
            "mailer_workers_live", f"Sender processes that beat within {threshold} s.", value=live
        )

        last_report = Report.objects.filter(sent_at__isnull=False).aggregate(at=Max("sent_at"))["at"]
        if last_report:
            yield GaugeMetricFamily(
                "mailer_report_last_sent_timestamp_seconds",
                "When the daily report last went out.",
                value=last_report.timestamp(),
            )


class _ThisProcess:
    """The process's own metrics (the default registry), when not in multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def exposition(with_database: bool = True) -> bytes:
    """The text exposition: process metrics (summed over processes in multiprocess mode) + DB gauges."""
    registry = CollectorRegistry()
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry.register(_ThisProcess())
    if with_database:
        registry.register(DatabaseCollector())
    return generate_latest(registry)


def _client_ip_allowed(request: HttpRequest, allowed: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    networks = [ipaddress.ip_network(item, strict=False) for item in allowed] if allowed else _LOOPBACK
    return any(address in network for network in networks)


def metrics_access(request: HttpRequest) -> int:
    """200 when the scraper may read /metrics, else the status to refuse with (401 or 403).

    A valid `Authorization: Bearer <METRICS_TOKEN>` is always enough. Without one, the client's
    address must be in METRICS_ALLOWED_IPS; when neither setting is configured, loopback only.
    REMOTE_ADDR is the direct peer: X-Forwarded-For is not trusted here.
    """
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header:
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
        return 200 if ok else 401
    ip_rule_applies = bool(settings.METRICS_ALLOWED_IPS) or not token
    if ip_rule_applies and _client_ip_allowed(request, settings.METRICS_ALLOWED_IPS):
        return 200
    return 401 if token else 403


@login_not_required
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    status = metrics_access(request)
    if status != 200:
        response = HttpResponse("Not allowed to read metrics.\n", status=status, content_type="text/plain")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


@login_not_required
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so a database outage restarts nothing."""
    return JsonResponse({"status": "ok"})


_migrations_done = False


def readiness() -> tuple[bool, dict[str, str]]:
    """Database reachable, migrations applied, some worker slot beat recently; with details."""
    global _migrations_done
    checks: dict[str, str] = {}
    step = "database"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
        step = "migrations"
        if not _migrations_done:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            # Once applied they stay applied for this code: later probes skip reading the files.
            _migrations_done = not plan
        checks["migrations"] = "ok" if _migrations_done else "unapplied migrations"
        step = "workers"
        checks["workers"] = _heartbeat_check()
    except DatabaseError as e:
        checks[step] = f"error: {e}"
    ready = len(checks) == 3 and all(value in ("ok", "not checked") for value in checks.values())
    if not ready:
        logger.warning("readyz: not ready: %s", checks)
    return ready, checks


def _heartbeat_check() -> str:
    limit = settings.MAILER_READY_HEARTBEAT_SECONDS
    if not limit:
        return "not checked"
    last = WorkerHeartbeat.objects.aggregate(at=Max("beat_at"))["at"]
    if last is None:
        return "no worker heartbeat yet"
    age = (timezone.now() - last).total_seconds()
    return "ok" if age <= limit else f"last worker heartbeat {int(age)} s ago"


@login_not_required
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready or not, to anyone (a probe needs no more); which check failed and why (a database
    error names its host and port) only to whoever may read /metrics, or a signed-in staff user.
    The reason is logged either way."""
    ready, checks = readiness()
    body: dict = {"status": "ready" if ready else "not ready"}
    if metrics_access(request) == 200 or request.user.is_staff:
        body["checks"] = checks
    return JsonResponse(body, status=200 if ready else 503)
