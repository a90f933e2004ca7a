"""A marketing person's day in a real browser: log in, import clients, create a mailing with a
local-time window, pause and resume it, watch the engine send it to the gateway stand-in until
the progress bar reaches 100%, and export the messages as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from mailer.models import Client, Mailing, MailingState, MessageStatus
from tests.conftest import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CSV = """phone,tag,timezone,consent_at,consent_source
79161234567,e2e,UTC,01.11.2026,site form
79261234567,e2e,Europe/London,2026-11-02,
7916123,e2e,UTC,,
79031234567,other,UTC,01.11.2026 10:00,paper form No. 7
"""


def _login(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/")


def test_marketing_day(page, django_user_model, engine, screenshot, tmp_path):
    from playwright.sync_api import expect

    user_with_role(django_user_model, "manager", "maria")
    _login(page, "maria")
    expect(page.locator("h1")).to_have_text("Home")

    # Clients by CSV import: check first (nothing saved), then import the good rows. A worker does
    # the work (here: this test, as the worker would); the page follows it by itself.
    from mailer.importing import run_import
    from mailer.models import ClientImport

    page.click("nav >> text=Clients")
    page.click("text=Import from Excel or CSV")
    csv_file = tmp_path / "clients.csv"
    csv_file.write_text(CSV)
    page.set_input_files("#id_file", str(csv_file))
    page.uncheck("#id_all_or_nothing")
    page.click("button[name=check]")
    expect(page.locator("#import-state")).to_have_text("Queued")
    run_import(ClientImport.objects.get().pk)
    report = page.locator("#report")
    expect(report).to_contain_text("importing would add 3 clients")
    expect(report.locator(".import-errors tbody tr")).to_have_count(1)
    expect(page.locator("#preview-rows tbody tr")).to_have_count(4)
    screenshot("clients-import-preview")
    assert Client.objects.count() == 0
    page.click("#confirm-import")
    expect(page.locator("#import-state")).to_have_text("Writing")
    run_import(ClientImport.objects.get().pk)
    expect(report).to_contain_text("Done: 3 added")
    expect(page.locator(".progress-bar")).to_have_text("100%")
    assert Client.objects.count() == 3

    # Filtering the clients table swaps the table only.
    page.click("nav >> text=Clients")
    page.select_option("#id_tag", "e2e")
    expect(page.locator("#table tbody tr")).to_have_count(2)
    screenshot("clients")

    # A mailing to tag e2e with a local window that is open now in both time zones.
    now = timezone.now()
    page.click("nav >> text=Mailings")
    page.click("text=New mailing")
    page.fill("#id_text", "Autumn sale: 20% off everything")
    page.fill("#id_start_at", (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_end_at", (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_window_start", (now - timedelta(hours=3)).strftime("%H:%M"))
    page.fill("#id_window_end", (now + timedelta(hours=3)).strftime("%H:%M"))
    expect(page.locator("#audience-count")).to_have_text("3")
    page.check("input[name=filter_tags][value=e2e]")
    expect(page.locator("#audience-count")).to_have_text("2")
    screenshot("mailing-form")
    page.click("button:has-text('Create mailing')")
    expect(page.locator(".alert-success")).to_contain_text("created")
    mailing = Mailing.objects.get()
    assert mailing.created_by.username == "maria" and mailing.filter_tags == ["e2e"]
    # From the list, a row's link opens the mailing's page (not swapped into the table).
    page.click("nav >> text=Mailings")
    page.click(f"#table tbody a[href='/mailings/{mailing.pk}/'] >> nth=0")
    page.wait_for_url(f"**/mailings/{mailing.pk}/")
    expect(page.locator("#state")).to_be_visible()

    # Pause before it starts, then resume: the buttons swap the summary in place.
    page.click("button:has-text('Pause')")
    expect(page.locator("#state")).to_have_text("Paused")
    expect(page.locator("#summary .alert-success")).to_contain_text("paused")
    page.click("button:has-text('Resume')")
    expect(page.locator("#summary .alert-success")).to_contain_text("resumed")

    # The engine sends; the page polls until the bar is full and the mailing finished.
    engine(20)
    expect(page.locator("#summary .percent")).to_have_text("100%", timeout=25_000)
    expect(page.locator("#state")).to_have_text("Finished", timeout=10_000)
    page.reload()
    assert mailing.messages.filter(status=MessageStatus.SENT).count() == 2
    expect(page.locator("#messages tbody tr")).to_have_count(2)
    screenshot("mailing-detail")

    # Export the messages: streamed CSV with a BOM and one row per message.
    with page.expect_download() as download:
        page.click("text=Export messages (CSV)")
    body = open(download.value.path(), encoding="utf-8").read()
    assert body.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(body[1:])))
    assert sorted(r["Phone"] for r in rows) == ["79161234567", "79261234567"]
    assert {r["Status"] for r in rows} == {"Accepted by the gateway"}
    assert all(r["Accepted at"].startswith(str(now.year)) for r in rows)  # English: 2026-12-04 17:30:58

    # The other pages, for the record.
    page.click("nav >> text=Home")
    expect(page.locator("#live")).to_contain_text("Nothing is running.")
    page.click("nav >> text=Mailings")
    screenshot("mailings")
    page.click("nav >> text=Statistics")
    # The totals arrive after the page and replace only themselves.
    expect(page.locator("#totals")).to_contain_text("Accepted by the gateway")
    expect(page.locator("#totals")).to_contain_text("2")
    expect(page.locator("#table tbody tr")).to_have_count(1)
    screenshot("statistics")
    mailing.refresh_from_db()
    assert mailing.state == MailingState.FINISHED


def test_viewer_sees_no_controls(page, django_user_model, make_mailing):
    user_with_role(django_user_model, "viewer", "victor")
    mailing = make_mailing(text="Read only")
    _login(page, "victor")
    page.goto(f"/mailings/{mailing.pk}/")
    from playwright.sync_api import expect

    expect(page.locator("h1")).to_have_text(f"Mailing #{mailing.pk}")
    expect(page.locator("#controls button")).to_have_count(0)
    expect(page.locator("text=New mailing")).to_have_count(0)


def test_phone_layout(page, django_user_model, make_mailing, screenshot):
    from playwright.sync_api import expect

    user_with_role(django_user_model, "manager", "mia")
    make_mailing(text="Seen on a phone")
    page.set_viewport_size({"width": 390, "height": 844})
    _login(page, "mia")
    page.goto("/mailings/")
    # The nav collapses behind the toggler; the table scrolls inside its own box.
    expect(page.locator(".navbar-toggler")).to_be_visible()
    expect(page.locator("nav >> text=Statistics")).to_be_hidden()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    screenshot("mailings-phone", full_page=False)
    page.click(".navbar-toggler")
    expect(page.locator("nav >> text=Statistics")).to_be_visible()


def test_home_progress_is_live(page, django_user_model, make_client, make_mailing, screenshot):
    from playwright.sync_api import expect

    from mailer.models import Message

    user_with_role(django_user_model, "manager", "max")
    now = timezone.now()
    running = make_mailing(text="Flash sale, today only", state=MailingState.RUNNING)
    make_mailing(text="Newsletter", start_at=now + timedelta(hours=3), end_at=now + timedelta(hours=6))
    statuses = [MessageStatus.SENT] * 4 + [MessageStatus.FAILED] + [MessageStatus.PENDING] * 5
    for i, status in enumerate(statuses):
        Message.objects.create(
            mailing=running,
            client=make_client(tag="vip"),
            status=status,
            sent_at=now - timedelta(minutes=i) if status == MessageStatus.SENT else None,
        )
    _login(page, "max")
    progress = page.locator(f"#live .mailing-progress[data-mailing='{running.pk}']")
    expect(progress.locator(".percent")).to_have_text("50%")
    expect(page.locator("body")).to_contain_text("Newsletter")
    screenshot("home")
    # The engine's work shows up without a reload: the live part polls every 2 s.
    for message in running.messages.filter(status=MessageStatus.PENDING):  # as the engine records them
        message.status, message.sent_at = MessageStatus.SENT, now
        message.save()
    expect(progress.locator(".percent")).to_have_text("100%", timeout=6_000)
    expect(progress).to_contain_text("accepted by the gateway 9")
    # Once nothing runs, the poll answers 286 and the live part stops asking.
    Mailing.objects.filter(pk=running.pk).update(state=MailingState.FINISHED)
    expect(page.locator("#live")).to_contain_text("Nothing is running.", timeout=6_000)
    expect(page.locator("#live[hx-trigger]")).to_have_count(0)
