from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from mailer import metrics as m
from mailer.models import GatewayState, MailingState, Message, MessageStatus, WorkerHeartbeat

ROOT = Path(__file__).resolve().parents[2]


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def known_queue(db, now, make_client, make_mailing):
    running = make_mailing(state=MailingState.RUNNING)
    make_mailing(state=MailingState.PAUSED)
    make_mailing(state=MailingState.FINISHED)
    clients = [make_client() for _ in range(7)]

    def message(status, client, **fields):
        return Message.objects.create(mailing=running, client=client, status=status, **fields)

    message(MessageStatus.SENT, clients[0], sent_at=now)
    message(MessageStatus.SENT, clients[1], sent_at=now)
    message(MessageStatus.FAILED, clients[2])
    # Pending: due for 5 minutes; due but leased by a worker; due with an expired lease; not yet due.
    message(MessageStatus.PENDING, clients[3], next_attempt_at=now - timedelta(minutes=5))
    message(MessageStatus.PENDING, clients[4], next_attempt_at=now - timedelta(hours=1),
            locked_until=now + timedelta(minutes=1))  # fmt: skip
    message(MessageStatus.PENDING, clients[5], next_attempt_at=now - timedelta(minutes=2),
            locked_until=now - timedelta(seconds=1))  # fmt: skip
    message(MessageStatus.PENDING, clients[6], next_attempt_at=now + timedelta(minutes=10))
    GatewayState.objects.create(
        pk=1, consecutive_failures=4, breaker_open_until=now + timedelta(seconds=30), auth_error=""
    )
    WorkerHeartbeat.objects.create(owner="h:1:ab/0", beat_at=now - timedelta(seconds=5))
    WorkerHeartbeat.objects.create(owner="h:1:ab/1", slot=1, beat_at=now - timedelta(minutes=10))


def test_database_gauges_after_a_known_set_of_messages(client, known_queue):
    samples = scrape(client)
    assert value(samples, "mailer_database_up") == 1
    assert {s: value(samples, "mailer_messages", status=s) for s in MessageStatus.values} == {
        "pending": 4, "sent": 2, "failed": 1, "expired": 0, "cancelled": 0,
    }  # fmt: skip
    assert value(samples, "mailer_mailings", state="running") == 1
    assert value(samples, "mailer_mailings", state="paused") == 1
    assert value(samples, "mailer_mailings", state="scheduled") == 0
    assert value(samples, "mailer_queue_pending") == 4
    assert value(samples, "mailer_queue_due") == 2
    assert 300 <= value(samples, "mailer_queue_oldest_due_age_seconds") < 330
    assert value(samples, "mailer_provider_breaker_open") == 1
    assert value(samples, "mailer_provider_consecutive_failures") == 4
    assert value(samples, "mailer_provider_auth_error") == 0
    assert 5 <= value(samples, "mailer_worker_heartbeat_age_seconds", slot="h:1:ab/0") < 30
    assert 600 <= value(samples, "mailer_worker_heartbeat_age_seconds", slot="h:1:ab/1") < 630
    assert value(samples, "mailer_workers_live") == 1


def test_empty_database_gives_zeros_not_gaps(client, db):
    samples = scrape(client)
    assert value(samples, "mailer_queue_due") == 0
    assert value(samples, "mailer_queue_oldest_due_age_seconds") == 0
    assert value(samples, "mailer_provider_breaker_open") == 0
    assert value(samples, "mailer_workers_live") == 0
    assert value(samples, "mailer_messages", status="sent") == 0


def test_auth_error_shows(client, db):
    GatewayState.objects.create(pk=1, auth_error="401 from the gateway")
    assert value(scrape(client), "mailer_provider_auth_error") == 1


def test_process_counters_and_histograms_are_exposed(client, db):
    before = scrape(client)

    def get(samples, name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0)

    m.GATEWAY_ERRORS.labels(kind="timeout").inc(2)
    m.MESSAGE_RETRIES.inc()
    m.MESSAGES_FINISHED.labels(status="sent").inc(3)
    m.GATEWAY_REQUEST_SECONDS.labels(outcome="ok").observe(0.03)
    client.get("/healthz")
    after = scrape(client)

    assert (
        get(after, "mailer_provider_errors_total", kind="timeout")
        - get(before, "mailer_provider_errors_total", kind="timeout")
        == 2
    )
    assert get(after, "mailer_message_retries_total") - get(before, "mailer_message_retries_total") == 1
    assert (
        get(after, "mailer_messages_finished_total", status="sent")
        - get(before, "mailer_messages_finished_total", status="sent")
        == 3
    )
    ok_bucket = ("mailer_provider_request_seconds_bucket", {"outcome": "ok", "le": "0.05"})
    assert get(after, ok_bucket[0], **ok_bucket[1]) - get(before, ok_bucket[0], **ok_bucket[1]) == 1
    # The web app's own requests: by method and status class, timed by URL name.
    assert (
        get(after, "mailer_http_requests_total", method="GET", status="2xx")
        - get(before, "mailer_http_requests_total", method="GET", status="2xx")
        == 2
    )  # /healthz and the first scrape
    assert (
        get(after, "mailer_http_request_seconds_count", view="healthz")
        - get(before, "mailer_http_request_seconds_count", view="healthz")
        == 1
    )


def test_unresolved_paths_share_one_label(client, db):
    client.get("/no/such/page/123")
    client.get("/another/missing/path")
    samples = scrape(client)
    views = {
        dict(labels).get("view") for (name, labels) in samples if name == "mailer_http_request_seconds_count"
    }
    assert "unresolved" in views
    assert not any(v and "missing" in v for v in views)


def test_multiprocess_mode_sums_the_counts_of_several_processes(client, db, tmp_path, monkeypatch):
    # Two separate processes (as gunicorn and the worker's processes are) count into the shared directory.
    code = "import sys; from mailer.metrics import MESSAGES_FINISHED as c; c.labels(status='sent').inc(int(sys.argv[1]))"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in ("3", "4"):
        subprocess.run([sys.executable, "-c", code, n], cwd=ROOT, env=env, check=True)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = scrape(client)
    assert value(samples, "mailer_messages_finished_total", status="sent") == 7
    assert value(samples, "mailer_database_up") == 1  # database gauges come along


@pytest.mark.parametrize(
    ("token", "allowed", "remote", "auth", "expected"),
    [
        ("", [], "127.0.0.1", "", 200),  # nothing configured: loopback only
        ("", [], "::1", "", 200),
        ("", [], "10.0.0.5", "", 403),
        ("s3cret", [], "10.0.0.5", "Bearer s3cret", 200),
        ("s3cret", [], "10.0.0.5", "bearer s3cret", 200),
        ("s3cret", [], "127.0.0.1", "", 401),  # a token configured: loopback is no longer enough
        ("s3cret", [], "10.0.0.5", "Bearer wrong", 401),
        ("s3cret", [], "10.0.0.5", "Basic s3cret", 401),
        ("", ["10.0.0.0/8", "192.168.1.7"], "10.1.2.3", "", 200),
        ("", ["10.0.0.0/8", "192.168.1.7"], "192.168.1.7", "", 200),
        ("", ["10.0.0.0/8", "192.168.1.7"], "192.168.1.8", "", 403),
        ("", ["10.0.0.0/8"], "127.0.0.1", "", 403),  # the list replaces the loopback default
        ("s3cret", ["10.0.0.0/8"], "10.1.2.3", "", 200),  # either one is enough
        ("s3cret", ["10.0.0.0/8"], "172.16.0.1", "", 401),
    ],
)
def test_metrics_protection(client, db, settings, token, allowed, remote, auth, expected):
    settings.METRICS_TOKEN = token
    settings.METRICS_ALLOWED_IPS = allowed
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    response = client.get("/metrics", REMOTE_ADDR=remote, **headers)
    assert response.status_code == expected
    if expected == 200:
        assert b"mailer_messages" in response.content
    else:
        assert b"mailer_" not in response.content
    if expected == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_forwarded_for_header_is_not_trusted(client, db):
    response = client.get("/metrics", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert response.status_code == 403


def test_database_outage_keeps_metrics_answering(client, db, monkeypatch):
    from django.db import OperationalError

    from mailer import monitoring

    def broken(self):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(monitoring.DatabaseCollector, "_from_database", broken)
    samples = scrape(client)
    assert value(samples, "mailer_database_up") == 0
    assert ("mailer_queue_due", ()) not in samples


def test_ops_endpoints_need_no_login():
    from mailer import monitoring

    for view in (monitoring.metrics, monitoring.healthz, monitoring.readyz):
        assert view.login_required is False


def test_now_is_used_for_ages(client, known_queue):
    WorkerHeartbeat.objects.filter(slot=1).update(beat_at=timezone.now())
    assert value(scrape(client), "mailer_workers_live") == 2


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        (
            "METRICS_ALLOWED_IPS",
            "10.0.0.0/8,intranet",
            "METRICS_ALLOWED_IPS must list addresses or networks, not 'intranet'",
        ),
        ("MAILER_READY_HEARTBEAT_SECONDS", "-5", "MAILER_READY_HEARTBEAT_SECONDS must be 0 or more"),
        ("MAILER_REPORT_TIME", "8am", "MAILER_REPORT_TIME must be HH:MM, not '8am'"),
        ("MAILER_REPORT_TIME", "24:00", "MAILER_REPORT_TIME must be HH:MM, not '24:00'"),
    ],
)
def test_bad_ops_settings_stop_the_start(variable, value, error):
    env = {**os.environ, variable: value, "DJANGO_SETTINGS_MODULE": "mailer.settings", "SECRET_KEY": "x"}
    code = "import django; django.setup()"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode != 0
    assert error in run.stderr
