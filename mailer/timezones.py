"""Time zones as people pick them: Russia's by their city and UTC offset ("Екатеринбург (UTC+5)"),
west to east, then every other IANA zone by its name. The IANA name is what is stored and sent
through the API; this is only how a person sees and picks it, in the client form, the profile and
the client list.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

_AVAILABLE: frozenset[str] | None = None


def available_timezones() -> frozenset[str]:
    global _AVAILABLE
    if _AVAILABLE is None:
        _AVAILABLE = frozenset(zoneinfo.available_timezones())
    return _AVAILABLE


def timezone_problem(name: str) -> str | None:
    """Why `name` can't be a client's or a user's zone, or None: the one rule at every door."""
    if name not in available_timezones():
        return _("%(name)r is not a known IANA time zone, e.g. Europe/Moscow.") % {"name": name[:64]}
    return None


def validate_timezone(value: str) -> None:
    if problem := timezone_problem(value):
        raise ValidationError(problem)


# Russia's zones (those tzdata lists for the country), by the city a Russian reader knows them by.
RUSSIAN_ZONES = {
    "Europe/Kaliningrad": gettext_lazy("Kaliningrad"),
    "Europe/Moscow": gettext_lazy("Moscow"),
    "Europe/Kirov": gettext_lazy("Kirov"),
    "Europe/Volgograd": gettext_lazy("Volgograd"),
    "Europe/Samara": gettext_lazy("Samara"),
    "Europe/Saratov": gettext_lazy("Saratov"),
    "Europe/Ulyanovsk": gettext_lazy("Ulyanovsk"),
    "Europe/Astrakhan": gettext_lazy("Astrakhan"),
    "Asia/Yekaterinburg": gettext_lazy("Yekaterinburg"),
    "Asia/Omsk": gettext_lazy("Omsk"),
    "Asia/Novosibirsk": gettext_lazy("Novosibirsk"),
    "Asia/Barnaul": gettext_lazy("Barnaul"),
    "Asia/Tomsk": gettext_lazy("Tomsk"),
    "Asia/Novokuznetsk": gettext_lazy("Novokuznetsk"),
    "Asia/Krasnoyarsk": gettext_lazy("Krasnoyarsk"),
    "Asia/Irkutsk": gettext_lazy("Irkutsk"),
    "Asia/Chita": gettext_lazy("Chita"),
    "Asia/Yakutsk": gettext_lazy("Yakutsk"),
    "Asia/Khandyga": gettext_lazy("Khandyga"),
    "Asia/Vladivostok": gettext_lazy("Vladivostok"),
    "Asia/Ust-Nera": gettext_lazy("Ust-Nera"),
    "Asia/Magadan": gettext_lazy("Magadan"),
    "Asia/Sakhalin": gettext_lazy("Sakhalin"),
    "Asia/Srednekolymsk": gettext_lazy("Srednekolymsk"),
    "Asia/Kamchatka": gettext_lazy("Kamchatka"),
    "Asia/Anadyr": gettext_lazy("Anadyr"),
}


def _offset(name: str, now: datetime) -> str:
    """UTC+3, UTC+5:30, UTC−1 (the offset now: zones with summer time change theirs)."""
    minutes = int(now.astimezone(zoneinfo.ZoneInfo(name)).utcoffset().total_seconds()) // 60
    sign = "+" if minutes >= 0 else "−"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "") if minutes else "UTC"


def zone_label(name: str, now: datetime | None = None) -> str:
    """How a person sees a zone: "Yekaterinburg (UTC+5)", "Europe/Paris (UTC+1)"."""
    if name not in available_timezones():
        return name
    city, offset = RUSSIAN_ZONES.get(name, name), _offset(name, now or timezone.now())
    return name if city == offset else f"{city} ({offset})"


def zone_choices() -> list:
    """Russia's zones west to east, then the rest by name: choices in two groups for a select,
    after an empty one (a required field then wants a choice, not the first zone of the list)."""
    now = timezone.now()
    by_offset = sorted(RUSSIAN_ZONES, key=lambda z: now.astimezone(zoneinfo.ZoneInfo(z)).utcoffset())
    others = sorted(available_timezones() - RUSSIAN_ZONES.keys())
    return [
        ("", "—"),
        (_("Russia"), [(z, zone_label(z, now)) for z in by_offset]),
        (_("Other zones"), [(z, zone_label(z, now)) for z in others]),
    ]


class TimezoneFormField(forms.ChoiceField):
    """A zone picked from zone_choices; anything else is refused by timezone_problem, as at every
    other door."""

    def __init__(self, **kwargs) -> None:
        for unused in ("max_length", "min_length", "strip", "empty_value"):
            kwargs.pop(unused, None)
        super().__init__(choices=zone_choices, **kwargs)

    def validate(self, value: str) -> None:
        forms.Field.validate(self, value)  # required; the choices are available_timezones()
        if value and (problem := timezone_problem(value)):
            raise ValidationError(problem, code="invalid_choice")
