from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import Profile
from accounts.roles import ROLE_LABELS, ROLES


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
        help_texts = {
            "timezone": _("Every date is shown and typed in it."),
            "language": _("Empty: your browser's."),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].required = True
        self.fields["language"].choices = [("", _("Browser's language")), *settings.LANGUAGES]
