"""Delivery receipts as a Russian marketer meets them in a real browser: the engine sends a mailing
to the gateway stand-in, which posts a receipt for each message back to the real web server
(operator 912's subscribers all undelivered); the mailing's page shows the delivery, per operator
and why; a number that stopped answering is listed, and a manager puts it back."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from mailer.models import AuditEntry, Client, Mailing, MailingCounts
from standin.gateway import Behaviour, FakeProvider
from tests.conftest import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_receipts_on_the_mailing_s_page_and_the_numbers_that_no_longer_answer(
    page_ru, django_user_model, make_client, settings, screenshot_dir, engine, live_server
):
    from playwright.sync_api import expect

    page = page_ru
    settings.MAILER_RECEIPT_TOKEN = "e2e-receipts"
    settings.MAILER_UNDELIVERED_LIMIT = 1
    gateway = FakeProvider(
        Behaviour(
            token="e2e-token",
            receipts_url=f"{live_server.url}/api/v1/gateway/receipts/",
            receipts_token="e2e-receipts",
            receipts_delay=0.2,
            undelivered={"912": 1.0},
            seed=2,
        )
    ).start_in_thread()
    try:
        user_with_role(django_user_model, "manager", "olga")
        for n in range(4):
            make_client(f"7916123456{n}", tag="vip")
        make_client("79121234567", tag="vip")
        make_client("79121234568", tag="vip")
        page.goto("/accounts/login/")
        page.fill("#id_username", "olga")
        page.fill("#id_password", "pw")
        page.click("button:has-text('Войти')")

        mailing = Mailing.objects.create(
            text="Зимняя распродажа: скидки до 30%",
            start_at=timezone.now(),
            end_at=timezone.now() + timedelta(hours=1),
            filter_tags=["vip"],
        )
        settings.MAILER_PROVIDER_URL = gateway.url  # the stand-in that posts receipts
        engine(6).join(20)
        deadline = time.monotonic() + 20
        counts = MailingCounts.objects.filter(mailing=mailing)
        while counts.get().delivered + counts.get().undelivered < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (counts.get().delivered, counts.get().undelivered) == (4, 2)

        page.goto(f"/mailings/{mailing.pk}/")
        expect(page.locator("#delivery")).to_contain_text(
            "доставлено 4, не доставлено 2, без отчёта о доставке 0"
        )
        operators = page.locator("#operators")
        expect(operators).to_contain_text("Доставка по операторам")
        expect(operators.locator("tr.table-danger")).to_contain_text("912")
        expect(page.locator("#reasons")).to_contain_text("Не доставлено: «absent subscriber» — 2")
        expect(page.locator("#delivery-chart")).to_be_visible()
        screenshot_dir("ru-mailing-delivery", page)

        page.goto("/clients/undeliverable/")
        expect(page.locator("h1")).to_have_text("Недоступные номера")
        expect(page.locator("#table")).to_contain_text("79121234567")
        screenshot_dir("ru-undeliverable", page)
        page.locator("tr", has_text="79121234567").locator("button:has-text('Вернуть')").click()
        expect(page.locator("#table")).not_to_contain_text("79121234567")
        assert Client.objects.get(phone="79121234567").undeliverable_at is None
        assert AuditEntry.objects.filter(action="deliverable", actor_name="olga").exists()
    finally:
        gateway.stop()
