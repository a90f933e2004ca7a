"""Russian and English: every string has a Russian translation, the compiled catalogue is the
current one, the language comes from the browser or the switcher, and dates and numbers follow it.

The catalogue checks need GNU gettext (`apt-get install gettext`): without it they skip, unless
MAILER_E2E_REQUIRED=1 (CI), where they fail.
"""

from __future__ import annotations

import gettext
import html
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from mailer.models import Message, MessageStatus
from tests.conftest import ROOT, user_with_role

PO = ROOT / "locale" / "ru" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
RU = {"HTTP_ACCEPT_LANGUAGE": "ru"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def require_gettext() -> None:
    if shutil.which("xgettext") and shutil.which("msgfmt"):
        return
    reason = "no GNU gettext (apt-get install gettext)"
    if os.environ.get("MAILER_E2E_REQUIRED") == "1":
        pytest.fail(f"MAILER_E2E_REQUIRED=1 but {reason}")
    pytest.skip(reason)


def make_messages(into: Path) -> Path:
    """The catalogue `manage.py makemessages` makes of today's code, in a copy of the project (the
    command writes where the code is): bin/messages does the same on the project itself."""
    ignore = shutil.ignore_patterns(".git", ".venv", "var", "node_modules", "staticfiles", "*.pyc")
    shutil.copytree(ROOT, into, ignore=ignore)
    subprocess.run(
        [sys.executable, str(into / "bin" / "messages.py")],
        cwd=into,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return into / "locale" / "ru" / "LC_MESSAGES" / "django.po"


def test_every_string_has_a_russian_translation(tmp_path):
    require_gettext()
    made = make_messages(tmp_path / "copy")
    untranslated = subprocess.run(
        ["msgattrib", "--untranslated", "--no-obsolete", str(made)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fuzzy = subprocess.run(
        ["msgattrib", "--only-fuzzy", "--no-obsolete", str(made)], capture_output=True, text=True, check=True
    ).stdout
    # The header entry is fuzzy-free and translated; anything printed is a string to translate.
    assert untranslated == "", (
        f"strings without a Russian translation (bin/messages.py, then translate):\n{untranslated}"
    )
    assert fuzzy == "", f"fuzzy translations to check:\n{fuzzy}"


def test_the_compiled_catalogue_is_the_current_one(tmp_path):
    require_gettext()
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check", "-o", str(fresh), str(PO)], check=True, timeout=60)
    with MO.open("rb") as committed, fresh.open("rb") as compiled:
        assert gettext.GNUTranslations(committed)._catalog == gettext.GNUTranslations(compiled)._catalog, (
            "locale/ru/LC_MESSAGES/django.mo is out of date: run bin/messages.py"
        )


# What may stay in Latin letters on a Russian page: names, formats, codes, and the data shown.
ALLOWED_LATIN = {
    "mailer", "SMS", "GSM", "UCS", "CSV", "API", "ETA", "OK", "UTC", "Auth0", "IANA", "Bearer",
    "RU", "EN", "English", "Django", "REST", "CRM", "opted_out", "consent_at", "consent_source", "Asia", "Vladivostok", "XXXXXXXXXX", "UTF", "Excel", "Windows", "xlsx", "MAILER_MAX_PARTS", "MAILER_APPROVAL_ABOVE", "phone", "tag", "timezone", "Europe", "Moscow", "name", "unsubscribe",
}  # fmt: skip


def latin_words(page: str, data: set[str]) -> set[str]:
    """Words in Latin letters a reader sees on `page` (text and titles, labels, placeholders),
    but for the allowed ones and the data shown."""
    page = re.sub(r"<(script|style|svg|code|datalist)\b.*?</\1>", " ", page, flags=re.S)
    # The world's zones by their IANA names (Russia's have Russian ones)
    page = re.sub(r'<optgroup label="Другие зоны">.*?</optgroup>', " ", page, flags=re.S)
    shown = re.findall(r'(?:title|aria-label|placeholder|hx-confirm|data-confirm)="([^"]*)"', page)
    text = re.sub(r"<[^>]+>", " ", page)
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9_]*", html.unescape(" ".join([text, *shown]))))
    return {w for w in words if w not in ALLOWED_LATIN and w not in data}


@pytest.fixture
def world(make_client, make_mailing, now, settings):
    mailing = make_mailing(text="Скидка 10%", filter_tags=["vip"], window_start=None, window_end=None)
    client = make_client(tag="vip", timezone="Europe/Moscow")
    Message.objects.create(
        mailing=mailing, client=client, status=MessageStatus.SENT, sent_at=now, sent_text=mailing.current_text
    )
    Message.objects.create(
        mailing=mailing, client=make_client(tag="vip"), status=MessageStatus.FAILED, last_error=""
    )
    settings.MAILER_APPROVAL_ABOVE = 0  # the later one awaits approval: its page offers it
    later = make_mailing(text="Завтра", start_at=now + timedelta(days=1), end_at=now + timedelta(days=2))
    return mailing, client, later


PAGES = [
    "/",
    "/mailings/",
    "/mailings/new/",
    "/mailings/{mailing}/",
    "/mailings/{later}/",  # nothing sent: the chart says so
    "/mailings/{mailing}/edit/",
    "/statistics/",
    "/statistics/totals/",
    "/clients/",
    "/clients/new/",
    "/clients/{client}/",
    "/clients/import/",
    "/clients/import/{imp}/",  # checked, with a row's error, waiting for the go-ahead
    "/accounts/tokens/",
    "/accounts/users/",
    "/accounts/profile/",
    "/stop-list/",
    "/audit/",
    "/mailings/test-sends/{test_send}/",
]


@pytest.mark.parametrize("url", PAGES)
def test_russian_pages_have_no_english_left(client, django_user_model, world, url, settings):
    mailing, someone, later = world
    admin = user_with_role(django_user_model, "admin", "boss")
    client.force_login(admin)
    from mailer.models import StopEntry, TestSend

    test = TestSend.objects.create(text="Привет", phones=[someone.phone], created_by=admin)
    StopEntry.opt_out(someone.phone, "ui", "по телефону", user=admin)
    mailing.pause(by=admin)
    someone.tag = "gold"
    someone.save_by(admin, via="admin")  # an audit entry from the Django admin, with a change
    from io import BytesIO

    from mailer.importing import run_import, start_import

    imp = start_import(
        BytesIO(b"phone,tag\n79161234567,vip\n12,x\n"), all_or_nothing=False, write=False, enqueue=False
    )
    settings.LANGUAGE_CODE = "ru"  # the worker writes the report in the site's language
    run_import(imp.pk)
    url = url.format(mailing=mailing.pk, client=someone.pk, test_send=test.pk, later=later.pk, imp=imp.pk)
    page = client.get(url, **RU).content.decode()
    data = {"vip", "gold", "boss", "Europe", "Moscow", "x"}
    assert latin_words(page, data) == set(), f"English left on {url} in Russian"


def test_the_login_page_in_russian(client):
    page = client.get("/accounts/login/", **RU).content.decode()
    assert latin_words(page, set()) == set()
    assert "Войти" in page


def test_the_language_follows_the_browser_and_then_the_switcher(viewer_client):
    assert '<html lang="ru">' in viewer_client.get("/", **RU).content.decode()
    assert '<html lang="en">' in viewer_client.get("/", **EN).content.decode()
    # The switcher's choice wins over the browser's, and is remembered.
    response = viewer_client.post("/i18n/setlang/", {"language": "en", "next": "/mailings/"}, **RU)
    assert response.status_code == 302 and response["Location"] == "/mailings/"
    page = viewer_client.get("/mailings/", **RU).content.decode()
    assert '<html lang="en">' in page and "New mailing" not in page and ">Mailings</h1>" in page
    viewer_client.post("/i18n/setlang/", {"language": "ru", "next": "/"}, **EN)
    assert '<h1 class="h4 mb-0">Рассылки</h1>' in viewer_client.get("/mailings/", **EN).content.decode()


def test_the_switcher_works_before_signing_in(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"}, **RU)
    assert response.status_code == 302
    assert '<html lang="en">' in client.get("/accounts/login/", **RU).content.decode()


def test_dates_and_numbers_follow_the_language(viewer_client, world, settings):
    settings.TIME_ZONE = "UTC"
    mailing = world[0]
    start = timezone.localtime(mailing.start_at)
    ru = viewer_client.get(f"/mailings/{mailing.pk}/", **RU).content.decode()
    en = viewer_client.get(f"/mailings/{mailing.pk}/", **EN).content.decode()
    assert start.strftime("%d.%m.%Y %H:%M") in ru and start.strftime("%Y-%m-%d %H:%M") in en
    totals_ru = viewer_client.get("/statistics/totals/", **RU).content.decode()
    totals_en = viewer_client.get("/statistics/totals/", **EN).content.decode()
    assert "<strong>50,0 %</strong>" in totals_ru and "<strong>50.0 %</strong>" in totals_en


def test_form_errors_and_messages_in_russian(manager_client, now):
    response = manager_client.post(
        "/mailings/new/",
        {"text": "x", "start_at": "2026-12-02T10:00", "end_at": "2026-12-02T09:00"},
        **RU,
    )
    assert "Конец должен быть позже начала." in response.content.decode()


def test_api_errors_in_russian(client):
    response = client.get("/api/v1/mailings/", **RU)
    assert response.status_code == 401
    assert re.search("[а-яА-Я]", response.json()["detail"]), response.json()


def test_the_daily_report_is_in_the_site_s_language(settings, make_mailing, now):
    from django.core import mail

    from mailer import reports

    settings.LANGUAGE_CODE = "ru"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_mailing(text="Скидка", started_at=now - timedelta(hours=1))
    reports.send(now - timedelta(hours=24), now, ["ops@example.com"])
    [email] = mail.outbox
    assert email.subject.startswith("mailer: ежедневный отчёт")
    assert "Рассылки, обработанные с" in email.body and "Всего 1 рассылка" in email.body
    assert "<th>Не принято</th>" in email.alternatives[0][0]


def test_api_validation_errors_in_russian(django_user_model, now):
    from rest_framework.test import APIClient

    from accounts.models import ApiToken

    api = APIClient()
    api.credentials(
        HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user_with_role(django_user_model, 'manager'), 'x')[1]}"
    )
    body = {"text": "x", "start_at": now.isoformat(), "end_at": (now - timedelta(hours=1)).isoformat()}
    response = api.post("/api/v1/mailings/", body, format="json", HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 400 and response.json()["end_at"] == ["Конец должен быть позже начала."]
    english = api.post("/api/v1/mailings/", body, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert english.json()["end_at"] == ["End must be after start."]


def test_a_wrong_type_is_refused_in_russian_too(django_user_model):
    from rest_framework.test import APIClient

    from accounts.models import ApiToken

    api = APIClient()
    api.credentials(
        HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user_with_role(django_user_model, 'manager'), 'x')[1]}"
    )
    response = api.post(
        "/api/v1/stop-list/", {"phone": 79161234567}, format="json", HTTP_ACCEPT_LANGUAGE="ru"
    )
    assert response.status_code == 400 and response.json() == {"phone": ["Нужна строка."]}


def test_the_engine_s_reasons_are_shown_in_the_reader_s_language(viewer_client, world):
    """Kept in English in last_error (the worker has no reader), shown translated (ENGINE_REASONS)."""
    from mailer.models import TOO_MANY_PARTS_WHY

    mailing = world[0]
    Message.objects.filter(mailing=mailing, status=MessageStatus.FAILED).update(last_error=TOO_MANY_PARTS_WHY)
    page = viewer_client.get(f"/mailings/{mailing.pk}/", **RU).content.decode()
    assert "текст занимает больше частей SMS, чем разрешает MAILER_MAX_PARTS" in page
    assert TOO_MANY_PARTS_WHY not in page
