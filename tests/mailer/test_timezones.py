"""Zones as people pick them (Russia's by city and offset, the IANA name stored) and the zone of a
client given none (MAILER_DEFAULT_CLIENT_TIMEZONE)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import translation

from mailer.models import Client
from mailer.timezones import RUSSIAN_ZONES, zone_choices, zone_label

WINTER = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_zones_are_named_by_city_and_offset():
    with translation.override("ru"):
        assert zone_label("Asia/Yekaterinburg", WINTER) == "Екатеринбург (UTC+5)"
        assert zone_label("Asia/Kolkata", WINTER) == "Asia/Kolkata (UTC+5:30)"
        assert zone_label("America/New_York", WINTER) == "America/New_York (UTC−5)"
        assert zone_label("UTC", WINTER) == "UTC"
        assert zone_label("Nowhere/Else", WINTER) == "Nowhere/Else"


def test_the_list_has_russia_first_west_to_east_then_every_other_zone():
    with translation.override("ru"):
        blank, (russia, ours), (other, theirs) = zone_choices()
    assert blank == ("", "—") and (russia, other) == ("Россия", "Другие зоны")
    zones = [z for z, _ in ours]
    assert zones[0] == "Europe/Kaliningrad" and set(zones[-2:]) == {"Asia/Kamchatka", "Asia/Anadyr"}
    assert {z for z, _ in ours} == set(RUSSIAN_ZONES)
    assert "Europe/Paris" in {z for z, _ in theirs} and not set(RUSSIAN_ZONES) & {z for z, _ in theirs}


def test_a_client_given_no_zone_gets_the_default(db, settings, client, django_user_model):
    settings.MAILER_DEFAULT_CLIENT_TIMEZONE = "Asia/Vladivostok"
    assert Client.objects.create(phone="79161234567").timezone == "Asia/Vladivostok"
    from tests.conftest import user_with_role

    client.force_login(user_with_role(django_user_model, "manager"))
    # The form offers it picked, from the list of cities.
    page = client.get("/clients/new/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert '<option value="Asia/Vladivostok" selected>Владивосток (UTC+10)</option>' in page
    client.post("/clients/new/", {"phone": "+7 916 765-43-21", "tag": "", "timezone": "Asia/Omsk"})
    assert Client.objects.get(phone="79167654321").timezone == "Asia/Omsk"
