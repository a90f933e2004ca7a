"""Each user's time zone and language: every date shown or typed in the UI is in the user's zone
and says so; the first pages propose the browser's zone; the API stays ISO 8601 with offsets."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from accounts.models import Profile
from mailer.models import Mailing
from tests.conftest import user_with_role

pytestmark = pytest.mark.django_db

VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")  # UTC+10
RU = {"HTTP_ACCEPT_LANGUAGE": "ru"}


@pytest.fixture
def manager(django_user_model):
    return user_with_role(django_user_model, "manager", "vera")


@pytest.fixture
def in_vladivostok(client, manager):
    Profile.objects.create(user=manager, timezone="Asia/Vladivostok")
    client.force_login(manager)
    return client


def test_a_mailing_for_0900_in_vladivostok_starts_at_0900_vladivostok(in_vladivostok, settings):
    settings.TIME_ZONE = "Europe/Moscow"  # the server's zone plays no part
    response = in_vladivostok.post(
        "/mailings/new/",
        {"text": "Доброе утро", "start_at": "03.12.2030 09:00", "end_at": "03.12.2030 21:00"},
        **RU,
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    mailing = Mailing.objects.get()
    assert mailing.start_at == datetime(2030, 12, 3, 9, 0, tzinfo=VLADIVOSTOK)
    assert mailing.start_at == datetime(2030, 12, 2, 23, 0, tzinfo=UTC)
    # Shown back in the same zone, and the page says which.
    page = in_vladivostok.get(f"/mailings/{mailing.pk}/", **RU).content.decode()
    assert "03.12.2030 09:00 – 03.12.2030 21:00" in page
    assert '<span id="current-zone">Владивосток (UTC+10)</span>' in page
    # The edit form: the same local time, in Russian format, with a hint that names the zone.
    form = in_vladivostok.get(f"/mailings/{mailing.pk}/edit/", **RU).content.decode()
    assert 'value="03.12.2030 09:00"' in form and 'placeholder="ДД.ММ.ГГГГ чч:мм"' in form
    assert "ваш часовой пояс — Владивосток (UTC+10)" in form


def test_english_dates_are_iso_and_iso_is_taken_in_russian(in_vladivostok):
    response = in_vladivostok.post(
        "/mailings/new/", {"text": "Hi", "start_at": "2030-12-03T09:00", "end_at": "2030-12-03 21:00"}, **RU
    )
    assert response.status_code == 302
    mailing = Mailing.objects.get()
    assert mailing.start_at == datetime(2030, 12, 3, 9, 0, tzinfo=VLADIVOSTOK)
    form = in_vladivostok.get(f"/mailings/{mailing.pk}/edit/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'value="2030-12-03 09:00"' in form and 'placeholder="YYYY-MM-DD hh:mm"' in form


def test_a_wrong_date_is_a_form_error_in_the_user_s_language(in_vladivostok):
    response = in_vladivostok.post(
        "/mailings/new/", {"text": "Hi", "start_at": "31.02.2030 09:00", "end_at": "03.12.2030 21:00"}, **RU
    )
    assert response.status_code == 200 and not Mailing.objects.exists()
    assert "Введите правильную дату и время." in response.content.decode()


def test_day_filters_are_whole_days_in_the_user_s_zone(in_vladivostok, make_mailing):
    # 2030-12-02 23:30 UTC is already the 3rd in Vladivostok.
    make_mailing(
        text="Early",
        start_at=datetime(2030, 12, 2, 23, 30, tzinfo=UTC),
        end_at=datetime(2030, 12, 3, 6, 0, tzinfo=UTC),
    )
    on_the_3rd = in_vladivostok.get("/mailings/?start_from=03.12.2030&start_to=03.12.2030", **RU)
    assert "Early" in on_the_3rd.content.decode()
    on_the_2nd = in_vladivostok.get("/mailings/?start_to=02.12.2030", **RU)
    assert "Early" not in on_the_2nd.content.decode()
    assert 'placeholder="ДД.ММ.ГГГГ"' in on_the_2nd.content.decode()


def test_the_first_pages_propose_the_browser_s_zone(client, manager, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(manager)
    page = client.get("/mailings/", **RU).content.decode()
    assert 'id="timezone-proposal"' in page
    assert 'name="timezone" value="UTC" data-browser-timezone' in page  # app.js puts the browser's here
    assert '<span id="current-zone">UTC</span>' in page
    response = client.post(
        "/accounts/profile/timezone/", {"timezone": "Asia/Vladivostok", "next": "/mailings/"}, **RU
    )
    assert response.status_code == 302 and response["Location"] == "/mailings/"
    assert Profile.objects.get(user=manager).timezone == "Asia/Vladivostok"
    page = client.get("/mailings/", **RU).content.decode()
    assert 'id="timezone-proposal"' not in page
    assert "Теперь все даты показываются и вводятся в поясе Владивосток (UTC+10)." in page


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "x" * 500])
def test_a_proposal_answer_that_is_no_zone_changes_nothing(client, manager, zone):
    client.force_login(manager)
    response = client.post("/accounts/profile/timezone/", {"timezone": zone, "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"  # never off-site
    assert Profile.of(manager).timezone == ""


def test_the_profile_page_sets_zone_and_language(client, manager):
    client.force_login(manager)
    page = client.get("/accounts/profile/", **RU).content.decode()
    # Russia's zones first, west to east, by their cities; the IANA name underneath.
    russia = page.split('<optgroup label="Россия">')[1]
    assert russia.lstrip().startswith('<option value="Europe/Kaliningrad">Калининград (UTC+2)</option>')
    assert '<option value="Asia/Kamchatka">Камчатка (UTC+12)</option>' in russia.split("</optgroup>")[0]
    response = client.post("/accounts/profile/", {"timezone": "Asia/Yekaterinburg", "language": "en"}, **RU)
    assert response.status_code == 302
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    profile = Profile.of(manager)
    assert (profile.timezone, profile.language) == ("Asia/Yekaterinburg", "en")
    assert (
        "Saved: every date is shown and typed in Yekaterinburg (UTC+5)."
        in client.get("/accounts/profile/").content.decode()
    )
    # Back to the browser's language: the cookie goes.
    response = client.post("/accounts/profile/", {"timezone": "Asia/Yekaterinburg", "language": ""})
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == ""
    bad = client.post("/accounts/profile/", {"timezone": "Nowhere/Else", "language": "de"}, **RU)
    assert bad.status_code == 200 and Profile.of(manager).timezone == "Asia/Yekaterinburg"
    assert "не часовой пояс IANA" in bad.content.decode()
    # A city typed for a zone (a form posted by hand) is the form's error, never saved.
    typed = client.post("/accounts/profile/", {"timezone": "Екатеринбург", "language": ""}, **RU)
    assert typed.status_code == 200 and "не часовой пояс IANA" in typed.content.decode()
    assert Profile.of(manager).timezone == "Asia/Yekaterinburg"


def test_the_language_choice_follows_the_user_to_another_browser(client, manager, django_user_model):
    client.force_login(manager)
    client.post("/i18n/setlang/", {"language": "ru", "next": "/"}, HTTP_ACCEPT_LANGUAGE="en")
    assert Profile.of(manager).language == "ru"
    from django.test import Client

    elsewhere = Client()  # no language cookie, an English browser
    elsewhere.force_login(manager)
    assert '<html lang="ru">' in elsewhere.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_the_api_stays_iso_8601_with_offsets(in_vladivostok, make_mailing):
    mailing = make_mailing(
        start_at=datetime(2030, 12, 2, 23, 0, tzinfo=UTC), end_at=datetime(2030, 12, 3, 11, 0, tzinfo=UTC)
    )
    data = in_vladivostok.get(f"/api/v1/mailings/{mailing.pk}/").json()
    assert datetime.fromisoformat(data["start_at"]) == mailing.start_at
    assert data["start_at"].endswith(("Z", "+00:00"))  # the server's zone, whoever asks


def test_every_user_sees_their_own_zone(client, django_user_model, make_mailing, manager):
    mailing = make_mailing(
        start_at=datetime(2030, 12, 2, 23, 0, tzinfo=UTC), end_at=datetime(2030, 12, 3, 11, 0, tzinfo=UTC)
    )
    moscow = user_with_role(django_user_model, "viewer", "misha")
    Profile.objects.create(user=moscow, timezone="Europe/Moscow")
    Profile.objects.create(user=manager, timezone="Asia/Vladivostok")
    client.force_login(moscow)
    assert "03.12.2030 02:00" in client.get(f"/mailings/{mailing.pk}/", **RU).content.decode()
    client.force_login(manager)
    assert "03.12.2030 09:00" in client.get(f"/mailings/{mailing.pk}/", **RU).content.decode()
