"""Settings come from the environment; bad values stop the start with the variable's name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    ],
)
def test_bad_value_fails_at_start_naming_the_variable(env, named):
    result = manage("check", **{**PRODUCTION, **env})
    assert result.returncode != 0
    assert named in result.stderr


def test_secret_key_is_required_without_debug():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr
