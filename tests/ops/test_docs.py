"""The metrics docs, dashboard and alert rules stay in step with what /metrics exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from mailer import metrics as m
from mailer.models import GatewayState, Report, WorkerHeartbeat

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


@pytest.fixture
def exposed(client, db) -> set[str]:
    """Family names on /metrics, with every optional metric present."""
    now = timezone.now()
    GatewayState.objects.create(pk=1, last_success_at=now)
    WorkerHeartbeat.objects.create(owner="h:1:ab/0", beat_at=now)
    Report.objects.create(date=now.date(), sent_at=now)
    m.GATEWAY_REQUEST_SECONDS.labels(outcome="ok").observe(0.1)
    m.GATEWAY_ERRORS.labels(kind="timeout").inc(0)
    m.MESSAGES_FINISHED.labels(status="sent").inc(0)
    client.get("/healthz")
    text = client.get("/metrics").content.decode()
    return {
        family_of(family.name)
        for family in text_string_to_metric_families(text)
        if family.name.startswith("mailer_")
    }


def family_of(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def used_metrics(expr: str) -> set[str]:
    return {family_of(name) for name in re.findall(r"\bmailer_[a-z_]+", expr)}


def test_metrics_md_lists_every_exposed_metric(exposed):
    listed = {
        family_of(name)
        for name in re.findall(r"^\| `(mailer_[a-z_]+)`", (DOCS / "metrics.md").read_text(), re.MULTILINE)
    }
    assert listed == exposed


def test_alert_rules_use_exposed_metrics_and_cover_the_issue(exposed):
    rules = [
        rule
        for group in yaml.safe_load((DOCS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    names = {rule["alert"] for rule in rules}
    assert {
        "MailerProviderBreakerOpen",
        "MailerProviderAuthFailure",
        "MailerQueueBackingUp",
        "MailerNoLiveWorker",
    } <= names
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert used_metrics(rule["expr"]) and used_metrics(rule["expr"]) <= exposed, rule["alert"]


def test_grafana_dashboard_uses_exposed_metrics(exposed):
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set().union(*(used_metrics(e) for e in exprs))
    assert used <= exposed
    # Everything but the bookkeeping gauges is on a panel.
    assert exposed - used <= {
        "mailer_database_up", "mailer_provider_last_success_timestamp_seconds", "mailer_report_last_sent_timestamp_seconds",
    }  # fmt: skip


def test_every_test_docs_security_names_exists():
    """The side-door table names the test that shows each door shut: a renamed test must not leave
    the table pointing at nothing."""
    root = DOCS.parent
    text = (DOCS / "security.md").read_text()
    named = []
    for cell in re.findall(r"`tests/[^`]+`(?:, `::[^`]+`)*", text):
        path, *names = (part.strip("`") for part in cell.split(", "))
        path, _, first = path.partition("::")
        named += [(path, name.removeprefix("::")) for name in [f"::{first}" if first else "", *names] if name]
    assert len(named) > 20
    for path, name in named:
        source = (root / path).read_text()
        assert re.search(rf"^def {re.escape(name)}\(", source, re.M), f"{path}::{name} is not a test"
