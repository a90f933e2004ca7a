from __future__ import annotations

from django import forms

from accounts.roles import ROLES


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True, help_text="What the token is for, e.g. “CRM import”.")
    days = forms.TypedChoiceField(
        label="Expires",
        choices=[("", "never"), (7, "in 7 days"), (30, "in 30 days"), (90, "in 90 days"), (365, "in a year")],
        coerce=int,
        empty_value=None,
        required=False,
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=[(role, role.capitalize()) for role in ROLES])
