"""AUTH0_CA_BUNDLE: the CA that Auth0's certificate is checked against (the local stand-in's)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AUTH0 = {"AUTH0_DOMAIN": "https://127.0.0.1:8101/", "AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "s"}


def load_settings(**env: str) -> subprocess.CompletedProcess:
    code = "import mailer.settings as s; print(s.SOCIAL_AUTH_AUTH0_VERIFY_SSL, s.SOCIAL_AUTH_AUTH0_DOMAIN)"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTH0_")}
    environ.update(SECRET_KEY="x", **env)
    return subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, env=environ, capture_output=True, text=True
    )


def test_the_bundle_is_what_social_auth_verifies_with(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")

    result = load_settings(AUTH0_CA_BUNDLE=str(bundle), **AUTH0)

    assert result.returncode == 0, result.stderr
    # The port stays in the domain: the local stand-in is "127.0.0.1:PORT".
    assert result.stdout.split() == [str(bundle), "127.0.0.1:8101"]


def test_without_a_bundle_the_system_cas_verify():
    result = load_settings(**AUTH0)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"


def test_a_missing_bundle_fails_naming_the_variable(tmp_path):
    result = load_settings(AUTH0_CA_BUNDLE=str(tmp_path / "nowhere.pem"), **AUTH0)

    assert result.returncode != 0
    assert "AUTH0_CA_BUNDLE must be a PEM file" in result.stderr
