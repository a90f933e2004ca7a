"""The Content-Security-Policy (default-src 'self', no inline script) breaks nothing in Chromium:
htmx swaps and polls, the charts draw, confirmations ask, Swagger UI and ReDoc render, and the
browser reports no violation on any page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailer.models import Client, Mailing, MailingState, Message, MessageStatus
from tests.conftest import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Runs before any page script (Playwright injects it; the page's policy does not apply to it).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def test_pages_work_under_the_policy(page, django_user_model, live_server):
    from playwright.sync_api import expect

    page.add_init_script(RECORD_VIOLATIONS)
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        found[name] = page.evaluate("window.__violations")

    user_with_role(django_user_model, "manager", "maria")
    client = Client.objects.create(phone="79161234567", tag="vip", timezone="UTC")
    now = timezone.now()
    mailing = Mailing.objects.create(
        text="Sale", start_at=now - timedelta(minutes=5), end_at=now + timedelta(hours=1)
    )
    Mailing.objects.filter(pk=mailing.pk).update(state=MailingState.RUNNING, started_at=now)
    for n, status in enumerate([MessageStatus.SENT, MessageStatus.SENT, MessageStatus.PENDING]):
        reader = Client.objects.create(phone=f"7903000000{n}", timezone="UTC")
        sent_at = now - timedelta(minutes=1) if status == MessageStatus.SENT else None
        Message.objects.create(mailing=mailing, client=reader, status=status, sent_at=sent_at)

    page.goto("/accounts/login/")
    response_policy = page.context.request.get(f"{live_server.url}/accounts/login/").headers[
        "content-security-policy"
    ]
    directives = dict(part.strip().split(" ", 1) for part in response_policy.split(";"))
    assert (directives["default-src"], directives["script-src"]) == ("'self'", "'self'")
    page.fill("#id_username", "maria")
    page.fill("#id_password", "pw")
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{live_server.url}/")
    check("login")

    # Home polls the running mailing's progress (htmx) and draws the hourly chart (SVG).
    with page.expect_response(lambda r: "/live/" in r.url):
        pass
    expect(page.locator("figure.chart").first).to_be_visible()
    check("home")

    # Filtering the mailings table swaps it (htmx, triggered as one types).
    page.goto("/mailings/")
    with page.expect_response(lambda r: "/mailings/?" in r.url):
        page.locator("input[type=search]").first.press_sequentially("zzz")
    expect(page.locator("table")).not_to_contain_text("Sale")
    check("mailings")

    page.goto(f"/mailings/{mailing.pk}/")
    expect(page.locator("figure.chart").first).to_be_visible()
    check("mailing")

    # The delete confirmation (data-confirm, static/js/app.js) asks before submitting; the page
    # fixture answers yes.
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    page.goto(f"/clients/{client.pk}/")
    page.click("button:has-text('Delete')")
    page.wait_for_url("**/clients/")
    assert dialogs == ["Delete client 79161234567?"]
    assert not Client.objects.filter(pk=client.pk).exists()
    check("clients")

    page.goto("/accounts/tokens/")
    page.fill("#id_name", "e2e")
    page.click("button:has-text('Create token')")
    page.focus("#new-token")
    token_length = len(page.input_value("#new-token"))
    assert (
        page.evaluate("(e => e.selectionEnd - e.selectionStart)(document.getElementById('new-token'))")
        == token_length
    )
    check("tokens")

    # Swagger UI renders the API's operations, ReDoc its menu.
    page.goto("/docs/")
    expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    check("swagger")
    page.goto("/redoc/")
    expect(page.get_by_text("mailings", exact=False).first).to_be_visible(timeout=20_000)
    check("redoc")

    # The one thing refused is wanted: the ReDoc bundle's "by Redocly" logo from its CDN.
    assert [v for v in found.pop("redoc") if "cdn.redoc.ly" not in v] == []
    assert found == {name: [] for name in found}


def test_the_django_admin_works_under_the_policy(page, django_user_model, live_server):
    from playwright.sync_api import expect

    page.add_init_script(RECORD_VIOLATIONS)
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    page.goto("/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    found = {"index": page.evaluate("window.__violations")}

    # The admin's own scripts run: date shortcuts on the mailing form, the permission picker.
    page.goto("/admin/mailer/mailing/add/")
    expect(page.locator(".datetimeshortcuts").first).to_be_visible()
    found["mailing"] = page.evaluate("window.__violations")
    page.goto(f"/admin/auth/user/{root.pk}/change/")
    expect(page.locator(".selector-available").first).to_be_visible()
    found["user"] = page.evaluate("window.__violations")

    assert found == {name: [] for name in found}
