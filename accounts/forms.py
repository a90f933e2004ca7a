from __future__ import annotations

from django import forms

from accounts.roles import ROLES


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True, help_text="What the token is for, e.g. “CRM import”.")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=[(role, role.capitalize()) for role in ROLES])
