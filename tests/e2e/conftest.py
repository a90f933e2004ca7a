"""End-to-end tests in a real headless Chromium (Debian's /usr/bin/chromium) against live_server.

Without a Chromium these tests skip, unless MAILER_E2E_REQUIRED=1 (CI), where they fail instead.
MAILER_SCREENSHOTS_DIR=docs/screenshots makes the flow save screenshots of the main pages.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MAILER_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium(path: str, required: bool) -> None:
    """Skip (or, when CI requires the browser tests, fail) if there is no Chromium at `path`."""
    if os.path.exists(path) or shutil.which(path):
        return
    reason = f"no Chromium at {path} (apt-get install chromium)"
    if required:
        pytest.fail(f"MAILER_E2E_REQUIRED=1 but {reason}")
    pytest.skip(reason)


def require_node(required: bool) -> None:
    """Skip (or fail, like require_chromium) without the node and npm that run the Auth0 stand-in."""
    missing = [name for name in ("node", "npm") if not shutil.which(name)]
    if not missing:
        return
    reason = f"no {' and '.join(missing)} on PATH (apt-get install nodejs npm)"
    if required:
        pytest.fail(f"MAILER_E2E_REQUIRED=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_args() -> list[str]:
    """Chromium's command line; a test module may override this fixture to add flags."""
    return ARGS


@pytest.fixture(scope="module")
def browser(browser_args):
    # Module scope: while Playwright runs, its event loop is "running" in this thread, which
    # would break other tests that run an asyncio loop of their own (the engine's Deliverer).
    require_chromium(CHROMIUM, os.environ.get("MAILER_E2E_REQUIRED") == "1")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, so Django refuses ORM calls here
    # unless told that these synchronous calls (fixtures, assertions) are fine.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=browser_args, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page_ru(browser, live_server, transactional_db):
    """A browser set to Russian and to Vladivostok's time zone."""
    context = browser.new_context(
        base_url=live_server.url,
        locale="ru-RU",  # Accept-Language: ru-RU
        timezone_id="Asia/Vladivostok",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


@pytest.fixture
def page(browser, live_server, transactional_db):
    context = browser.new_context(
        base_url=live_server.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    # hx-confirm and onsubmit confirmations: say yes, as a user would.
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


@pytest.fixture
def screenshot_dir():
    """shoot(name, page): a screenshot of `page` into MAILER_SCREENSHOTS_DIR, when it is set."""
    directory = os.environ.get("MAILER_SCREENSHOTS_DIR")

    def shoot(name: str, page, full_page: bool = True) -> None:
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=full_page)

    return shoot


@pytest.fixture
def screenshot(page, screenshot_dir):
    """shoot(name): the same, of the `page` fixture."""

    def shoot(name: str, full_page: bool = True) -> None:
        screenshot_dir(name, page, full_page)

    return shoot


@pytest.fixture
def engine(settings):
    """Runs a sender (engine.worker.run_sender) in a thread against a local gateway stand-in."""
    from django.db import connections

    from engine import worker
    from standin.gateway import Behaviour, FakeProvider

    provider = FakeProvider(Behaviour(token="e2e-token", seed=1)).start_in_thread()
    settings.MAILER_PROVIDER_URL = provider.url
    settings.MAILER_PROVIDER_TOKEN = "e2e-token"
    threads: list[threading.Thread] = []
    main = connections["default"]
    # An in-memory SQLite test database is one connection that live_server already shares
    # between threads; the engine thread must use it too, or it would see another database.
    share = main.vendor == "sqlite" and main.is_in_memory_db()

    def run(seconds: float) -> threading.Thread:
        def target() -> None:
            if share:
                connections["default"] = main
            stop = worker.Stop()
            threading.Timer(seconds, lambda: setattr(stop, "requested", True)).start()
            try:
                worker.run_sender("e2e/0", 0, stop)
            finally:
                if not share:
                    connections.close_all()

        thread = threading.Thread(target=target, name="engine", daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield run
    for thread in threads:
        thread.join(30)
    provider.stop()
