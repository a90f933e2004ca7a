from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.utils import timezone

from mailer import monitoring
from mailer.models import WorkerHeartbeat


@pytest.fixture(autouse=True)
def _fresh_migration_check(monkeypatch):
    monkeypatch.setattr(monitoring, "_migrations_done", False)


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any query here would fail the test.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_with_a_recent_heartbeat(client, db):
    WorkerHeartbeat.objects.create(owner="h:1:ab/0", beat_at=timezone.now() - timedelta(seconds=30))
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "workers": "ok"},
    }


def test_not_ready_without_any_heartbeat(client, db):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert response.json()["checks"]["workers"] == "no worker heartbeat yet"


def test_not_ready_when_the_last_heartbeat_is_old(client, db, settings):
    settings.MAILER_READY_HEARTBEAT_SECONDS = 120
    WorkerHeartbeat.objects.create(owner="h:1:ab/0", beat_at=timezone.now() - timedelta(minutes=3))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"].startswith("last worker heartbeat 18")


def test_heartbeat_check_can_be_switched_off(client, db, settings):
    settings.MAILER_READY_HEARTBEAT_SECONDS = 0
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["workers"] == "not checked"


def test_not_ready_with_unapplied_migrations(client, db, monkeypatch):
    WorkerHeartbeat.objects.create(owner="h:1:ab/0", beat_at=timezone.now())
    monkeypatch.setattr(
        monitoring.MigrationExecutor, "migration_plan", lambda self, targets: [("mailer.9999_new", False)]
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "unapplied migrations"


def test_not_ready_when_the_database_is_unreachable(client, db):
    def broken():
        raise OperationalError("could not connect to server")

    with mock.patch.object(monitoring.connection, "cursor", broken):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "error: could not connect to server"}


def test_check_ready_command(db):
    with pytest.raises(CommandError, match="not ready"):
        call_command("check_ready")
    WorkerHeartbeat.objects.create(owner="h:1:ab/0", beat_at=timezone.now())
    call_command("check_ready")


def test_a_failure_after_the_database_answered_is_reported_under_its_check(client, db):
    def broken(self, targets):
        raise OperationalError("connection lost")

    with mock.patch.object(monitoring.MigrationExecutor, "migration_plan", broken):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "migrations": "error: connection lost"}


def test_an_anonymous_caller_learns_ready_or_not_and_nothing_more(client, db, settings, caplog):
    settings.METRICS_TOKEN = "scrape-token"

    def broken():
        raise OperationalError('connection to server at "db.internal" (10.1.2.3), port 5432 failed')

    with mock.patch.object(monitoring.connection, "cursor", broken):
        anonymous = client.get("/readyz", REMOTE_ADDR="203.0.113.9")
        operator = client.get("/readyz", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token")

    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "not ready"})
    assert b"10.1.2.3" not in anonymous.content
    assert "10.1.2.3" in caplog.text  # the reason is in the log
    assert operator.json()["checks"]["database"].startswith("error: connection to server")


def test_a_signed_in_staff_user_sees_the_checks(client, db, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    response = client.get("/readyz", REMOTE_ADDR="203.0.113.9")
    assert response.json()["checks"]["workers"] == "no worker heartbeat yet"
