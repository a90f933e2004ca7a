"""Issue 21's doors as a Russian team meets them in a real browser: a manager's test to a phone on
the stop list and over the hour's quota is refused saying why and until when; an admin sees a
colleague locked out on the Users page and unlocks them there, while the Django admin only shows."""

from __future__ import annotations

import pytest

from mailer.models import StopEntry
from tests.conftest import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def sign_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("button:has-text('Войти')")


def test_a_manager_s_tests_keep_the_stop_list_and_the_quota(
    page_ru,
    django_user_model,
    make_mailing,
    settings,
    screenshot_dir,
):
    from playwright.sync_api import expect

    page = page_ru
    settings.MAILER_TEST_SEND_LIMIT = 2
    user_with_role(django_user_model, "manager", "ivan")
    mailing = make_mailing(text="Скидка 20% на всё")
    StopEntry.opt_out("79261234567", "ui", reason="просил не писать")
    sign_in(page, "ivan")

    page.goto(f"/mailings/{mailing.pk}/")
    page.fill("#id_test_phones", "+7 916 123-45-67, 8 926 123-45-67")
    page.click("#send-test")
    result = page.locator("#test-send-result")
    expect(result).to_contain_text("79261234567 в стоп-листе с")
    expect(result).to_contain_text("(просил не писать): тест на него не отправляется.")
    screenshot_dir("ru-test-send-stop-list", page)

    page.fill("#id_test_phones", "+7 916 123-45-67, +7 903 123-45-67")
    page.click("#send-test")
    expect(page.locator("#test-send-state")).to_have_text("Ждёт отправителя")
    page.fill("#id_test_phones", "+7 905 123-45-67")
    page.click("#send-test")
    expect(page.locator("#test-send-result")).to_contain_text(
        "Лимит тестов — 2 номера в час, уже использовано 2; следующий тест можно отправить в"
    )
    screenshot_dir("ru-test-send-quota", page)


def test_an_admin_unlocks_a_colleague_on_the_users_page(page_ru, django_user_model, settings, screenshot_dir):
    from playwright.sync_api import expect

    page = page_ru
    user_with_role(django_user_model, "admin", "olga")
    user_with_role(django_user_model, "manager", "ivan")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.goto("/accounts/login/")
        page.fill("#id_username", "ivan")
        page.fill("#id_password", "забыл")
        page.click("button:has-text('Войти')")
    expect(page.locator("body")).to_contain_text("Слишком много неудачных попыток входа")

    # A colleague behind the same address signs in all the same.
    sign_in(page, "olga")
    expect(page.locator("h1")).to_have_text("Главная")
    page.goto("/accounts/users/")
    row = page.locator("tr", has_text="ivan")
    expect(row).to_contain_text("заблокирован")
    screenshot_dir("ru-users-locked", page)
    row.locator("button:has-text('Разблокировать')").click()
    expect(page.locator(".alert-success")).to_contain_text("Вход для ivan разблокирован")
    expect(page.locator("tr", has_text="ivan")).not_to_contain_text("заблокирован")

    # The Django admin shows her the product's models, and lets her change nothing there.
    page.goto("/admin/axes/accessattempt/")
    expect(page.locator("body")).not_to_contain_text("Удалить выбранные")
    page.goto("/admin/mailer/client/")
    expect(page.locator("a.addlink")).to_have_count(0)
    screenshot_dir("ru-admin-read-only", page)
