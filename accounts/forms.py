from __future__ import annotations

import zoneinfo

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import Profile
from accounts.roles import ROLE_LABELS, ROLES
from mailer.models import available_timezones

RUSSIAN_ZONES = frozenset(
    {
        "Europe/Kaliningrad", "Europe/Moscow", "Europe/Samara", "Europe/Volgograd", "Europe/Saratov",
        "Europe/Ulyanovsk", "Europe/Astrakhan", "Europe/Kirov", "Asia/Yekaterinburg", "Asia/Omsk",
        "Asia/Novosibirsk", "Asia/Barnaul", "Asia/Tomsk", "Asia/Novokuznetsk", "Asia/Krasnoyarsk",
        "Asia/Irkutsk", "Asia/Chita", "Asia/Yakutsk", "Asia/Khandyga", "Asia/Vladivostok",
        "Asia/Ust-Nera", "Asia/Magadan", "Asia/Sakhalin", "Asia/Srednekolymsk", "Asia/Kamchatka",
        "Asia/Anadyr",
    }
)  # fmt: skip


class TokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100, strip=True, help_text=_("What the token is for, e.g. “CRM import”.")
    )
    days = forms.TypedChoiceField(
        label=_("Expires"),
        choices=[
            # Shown after "expires": a context of its own, apart from the "never" of a token never used.
            ("", pgettext_lazy("token expires", "never")),
            (7, _("in 7 days")),
            (30, _("in 30 days")),
            (90, _("in 90 days")),
            (365, _("in a year")),
        ],
        coerce=int,
        empty_value=None,
        required=False,
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=[(role, capfirst(ROLE_LABELS[role])) for role in ROLES])


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ["timezone", "language"]
        labels = {"timezone": _("Time zone"), "language": _("Language")}
        widgets = {"timezone": forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"})}
        help_texts = {
            "timezone": _("Every date is shown and typed in it, e.g. Europe/Moscow or Asia/Vladivostok."),
            "language": _("Empty: your browser's."),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].required = True
        self.fields["language"].choices = [("", _("Browser's language")), *settings.LANGUAGES]

    @staticmethod
    def timezones() -> list[str]:
        """Russia's zones first, west to east (where our clients and staff are), then the rest."""
        now = timezone.now()
        russian = sorted(RUSSIAN_ZONES, key=lambda z: (now.astimezone(zoneinfo.ZoneInfo(z)).utcoffset(), z))
        return russian + sorted(available_timezones() - RUSSIAN_ZONES)
