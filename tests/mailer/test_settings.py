"""Settings come from the environment; bad values stop the start with the variable's name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "SECRET_KEY": "x" * 60 + "-production-like-key-with-enough-variety-0123456789",
    "ALLOWED_HOSTS": "mailer.example.com",
    "SESSION_COOKIE_SECURE": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "BEHIND_PROXY": "true",
    "METRICS_TOKEN": "metrics-token",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_passes_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize(
    "env,named",
    [
        ({"DEBUG": "perhaps"}, "DEBUG"),
        ({"SECURE_HSTS_SECONDS": "a year"}, "SECURE_HSTS_SECONDS"),
        ({"MAILER_BATCH_SIZE": "many"}, "MAILER_BATCH_SIZE"),
        ({"MAILER_PROVIDER_URL": "gateway.example.com"}, "MAILER_PROVIDER_URL"),
        ({"DATABASE_URL": "nonsense://"}, "DATABASE_URL"),
        ({"MAILER_REQUEST_TIMEOUT": "40"}, "MAILER_LEASE_SECONDS"),
        # Behind a proxy, loopback proves nothing: /metrics needs a token or an allow-list.
        ({"METRICS_TOKEN": "", "METRICS_ALLOWED_IPS": ""}, "METRICS_TOKEN or METRICS_ALLOWED_IPS"),
        ({"LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT"),
        # An address limit within one username's reach would lock an office out for one person.
        ({"LOGIN_ADDRESS_FAILURE_LIMIT": "10"}, "LOGIN_ADDRESS_FAILURE_LIMIT"),
    ],
)
def test_bad_value_fails_at_start_naming_the_variable(env, named):
    result = manage("check", **{**PRODUCTION, **env})
    assert result.returncode != 0
    assert named in result.stderr


def test_secret_key_is_required_without_debug():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def cookie_settings(**env: str) -> str:
    result = load_settings(
        "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", without=("SITE_URL", "SESSION_COOKIE_SECURE"), **env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_shipped_example_secrets_stop_the_start_naming_each():
    """deploy/k8s/secret.yaml applied as it is: every placeholder is named, none is accepted."""
    from tests.ops.test_deploy import k8s_documents

    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in k8s_documents()}
    result = manage("check", **{**PRODUCTION, **docs["Secret", "mailer-secrets"]["stringData"]})

    assert result.returncode != 0
    named = (
        "SECRET_KEY, METRICS_TOKEN, MAILER_PROVIDER_TOKEN, EMAIL_HOST_PASSWORD, DATABASE_URL (its password)"
    )
    assert f"is not a secret: set {named} to real secrets" in result.stderr


@pytest.mark.parametrize("value", ["change-me", "CHANGEME", "secret", "django-insecure-abc"])
def test_a_placeholder_secret_is_refused_unless_debug(value):
    assert (
        "set METRICS_TOKEN to real secrets"
        in manage("check", **{**PRODUCTION, "METRICS_TOKEN": value}).stderr
    )
    assert manage("check", **{**PRODUCTION, "METRICS_TOKEN": value, "DEBUG": "1"}).returncode == 0


def test_cookies_are_secure_whenever_the_site_is_https():
    assert cookie_settings(SITE_URL="https://mailer.example.com") == "True True"
    assert cookie_settings(SITE_URL="http://127.0.0.1:8000") == "False False"
    assert cookie_settings() == "False False"
    # An explicit setting still wins (e.g. a test deployment on plain HTTP with an https SITE_URL).
    assert (
        cookie_settings(SITE_URL="https://mailer.example.com", SESSION_COOKIE_SECURE="false") == "False False"
    )


def test_the_kubernetes_settings_pass_the_deploy_check():
    """HSTS, the SSL redirect and secure cookies are on in deploy/k8s, and the start accepts it."""
    from tests.ops.test_deploy import k8s_documents

    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in k8s_documents()}
    env = {**docs["ConfigMap", "mailer-config"]["data"], **docs["Secret", "mailer-secrets"]["stringData"]}
    # Real secrets in place of the example's placeholders; no database server needed for the check.
    env.update(
        SECRET_KEY=PRODUCTION["SECRET_KEY"],
        DATABASE_URL="",
        MAILER_PROVIDER_TOKEN="gateway-jwt",
        METRICS_TOKEN="scrape-token-0f3a",
        EMAIL_HOST_PASSWORD="smtp-password-9c1e",
    )

    result = manage("check", "--deploy", **env)

    assert result.returncode == 0, result.stderr + result.stdout
    # HSTS preload is a commitment to the browsers' list that each deployment makes on its own.
    warnings = re.findall(r"\((\w+\.W\d+)\)", result.stderr + result.stdout)
    assert warnings in ([], ["security.W021"]), result.stderr
    assert env["SECURE_SSL_REDIRECT"] == "true" and int(env["SECURE_HSTS_SECONDS"]) >= 31536000
