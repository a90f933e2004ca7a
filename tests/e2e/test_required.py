"""Without Chromium (or node, for single sign-on) the browser tests skip, unless CI requires them
(MAILER_E2E_REQUIRED=1)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CHROMIUM, require_chromium, require_node


def test_missing_chromium_skips_with_reason():
    with pytest.raises(pytest.skip.Exception, match="no Chromium at /nonexistent/chromium"):
        require_chromium("/nonexistent/chromium", required=False)


def test_missing_chromium_fails_when_required():
    with pytest.raises(pytest.fail.Exception, match="MAILER_E2E_REQUIRED=1 but no Chromium"):
        require_chromium("/nonexistent/chromium", required=True)


def test_present_chromium_passes(tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("")
    require_chromium(str(fake), required=True)  # neither skips nor fails
    assert CHROMIUM  # the default path is configured


def test_missing_node_skips_or_fails_when_required(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.skip.Exception, match="no node and npm on PATH"):
        require_node(required=False)
    with pytest.raises(pytest.fail.Exception, match="MAILER_E2E_REQUIRED=1 but no node and npm"):
        require_node(required=True)
