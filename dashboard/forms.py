"""Forms of the dashboard. Validation messages come from the models' own rules (full_clean)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from crispy_forms.helper import FormHelper
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from dashboard.filters import existing_operator_codes, existing_tags
from mailer.formats import hint as formats_hint
from mailer.importing import COLUMNS, size_problem
from mailer.models import (
    ATTRIBUTE_MAX,
    EARLIEST,
    LATEST,
    REFUSAL_REASON_MAX,
    Client,
    ClientField,
    Mailing,
    MailingKind,
    PhoneFormField,
    hours_text,
    normalize_text,
    printable_problem,
    quiet_hours,
    tag_problem,
    variables,
)
from mailer.timezones import zone_label

MAX_TEXT = Mailing._meta.get_field("text").max_length


def _datetime_field(label: str) -> forms.DateTimeField:
    # A text field in the user's language's format (02.12.2026 09:00 in Russian), not the browser's
    # datetime-local, which follows the browser's locale whatever the user chose; ISO 8601 is
    # accepted too. Parsed in the user's time zone (accounts.middleware.UserPreferencesMiddleware).
    return forms.DateTimeField(
        label=label, localize=True, widget=forms.DateTimeInput(attrs={"autocomplete": "off"})
    )


# A new mailing's end unless one is given: long enough for a day's sending windows.
DEFAULT_DURATION = timedelta(days=1)


class MailingForm(forms.ModelForm):
    start_at = _datetime_field(gettext_lazy("Start"))
    end_at = _datetime_field(gettext_lazy("End"))
    # The start is then the moment of saving, not the minute the form was opened at.
    start_now = forms.BooleanField(label=gettext_lazy("Send now"), required=False)
    filter_tags = forms.MultipleChoiceField(
        label=gettext_lazy("Tags"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    new_tags = forms.CharField(
        label=gettext_lazy("Other tags"),
        required=False,
        max_length=500,
        help_text=gettext_lazy("Tags no client has yet, separated by commas."),
    )
    # The revision the form was opened at: saving over a newer one is a conflict (Mailing.save_edit).
    revision = forms.IntegerField(widget=forms.HiddenInput, required=False)
    filter_operator_codes = forms.MultipleChoiceField(
        label=gettext_lazy("Operator codes"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Mailing
        fields = [
            "text",
            "kind",
            "start_at",
            "end_at",
            "filter_tags",
            "new_tags",
            "filter_operator_codes",
            "window_start",
            "window_end",
            "track_links",
        ]
        widgets = {
            "text": forms.Textarea(attrs={"rows": 3, "maxlength": MAX_TEXT}),
            "kind": forms.RadioSelect,
            # No placeholder: a pale 09:00 looks like a value, and an empty window is a choice.
            "window_start": forms.TimeInput(attrs={"autocomplete": "off"}, format="%H:%M"),
            "window_end": forms.TimeInput(attrs={"autocomplete": "off"}, format="%H:%M"),
        }
        labels = {
            "text": gettext_lazy("Text"),
            "kind": gettext_lazy("Kind"),
            "window_start": gettext_lazy("Send from (client-local)"),
            "window_end": gettext_lazy("Send until (client-local)"),
            "track_links": gettext_lazy(
                "Count clicks: each address goes as a short link of the client's own"
            ),
        }
        help_texts = {
            "kind": gettext_lazy(
                "Advertising goes only to clients who agreed to it (38-FZ, art. 18) and waits out "
                "quiet hours. Service messages (an order is ready, a visit is booked) are not "
                "advertising: no consent is asked."
            ),
            "window_start": gettext_lazy(
                "HH:MM. Both empty: at any hour of the client's day, the night included."
            ),
            "window_end": gettext_lazy("May be earlier than the start: the window then crosses midnight."),
            "track_links": gettext_lazy(
                "A short link is a few characters, so it also costs fewer SMS parts. Off: the "
                "addresses go as written, and nobody's clicks are known."
            ),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["revision"].initial = self.instance.revision
            del self.fields["start_now"]
        else:
            # Shown and editable: a start a few minutes ahead (time to check the form) and an end a
            # day after it; "Send now" takes the moment of saving instead.
            start = timezone.localtime().replace(second=0, microsecond=0) + timedelta(minutes=10)
            self.initial.setdefault("start_at", start)
            self.initial.setdefault("end_at", start + DEFAULT_DURATION)
        self.fields["start_at"].required = False
        self.fields["text"].help_text = _(
            "Variables: %(variables)s; after | what a client without a value gets: {name|клиент}."
        ) % {"variables": ", ".join(f"{{{key}}}" for key in variables())}
        # A post without it (a script's) keeps the kind as it is: advertising for a new mailing.
        self.fields["kind"].required = False
        zone = zone_label(timezone.get_current_timezone_name())
        for name in ("start_at", "end_at"):
            self.fields[name].help_text = _("%(format)s; your time zone: %(zone)s.") % {
                "format": formats_hint("DATETIME_INPUT_FORMATS"),
                "zone": zone,
            }
            self.fields[name].widget.attrs["placeholder"] = formats_hint("DATETIME_INPUT_FORMATS")
        # Choices are what clients have, plus whatever this mailing already targets.
        initial_tags = self.initial.get("filter_tags") or []
        initial_codes = self.initial.get("filter_operator_codes") or []
        tags = sorted(set(existing_tags()) | set(initial_tags))
        codes = sorted(set(existing_operator_codes()) | {str(c) for c in initial_codes})
        if quiet := quiet_hours():
            self.fields["window_start"].help_text = _(
                "HH:MM. Both empty: at any hour of the client's day; advertising never in quiet hours "
                "(%(quiet)s, client's time)."
            ) % {"quiet": hours_text(quiet)}
        self.fields["filter_tags"].choices = [(t, t) for t in tags]
        self.fields["filter_operator_codes"].choices = [(c, c) for c in codes]
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean_text(self) -> str:
        return normalize_text(self.cleaned_data["text"])

    def clean_kind(self) -> str:
        return self.cleaned_data["kind"] or self.instance.kind

    def clean_new_tags(self) -> list[str]:
        tags = [t.strip() for t in self.cleaned_data["new_tags"].split(",") if t.strip()]
        if problem := next(filter(None, map(tag_problem, tags)), None):
            raise ValidationError(problem)
        return tags

    def clean(self) -> dict:
        if self.cleaned_data.get("start_now"):
            self.cleaned_data["start_at"] = timezone.now().replace(microsecond=0)
            self.errors.pop("start_at", None)
        elif "start_at" in self.cleaned_data and not self.cleaned_data["start_at"]:
            self.add_error("start_at", _("Give the start, or tick “Send now”."))
        cleaned = super().clean()
        if "filter_tags" in cleaned:
            cleaned["filter_tags"] = sorted(set(cleaned["filter_tags"]) | set(cleaned.get("new_tags") or []))
        return cleaned


def draft_timing(data) -> Mailing:
    """The kind, start and window a mailing form holds so far (its preview asks as it changes);
    what is not readable yet is left as a new mailing has it (the start: now)."""
    fields = MailingForm.base_fields
    typed = {}
    for name in ("start_at", "end_at", "window_start", "window_end"):
        with contextlib.suppress(ValidationError, OverflowError):
            typed[name] = fields[name].clean(data.get(name, "")) if name in data else None
    draft = Mailing(
        kind=data.get("kind") if data.get("kind") in MailingKind.values else MailingKind.ADVERTISING
    )
    start = None if data.get("start_now") else typed.get("start_at")
    draft.start_at = start if start and EARLIEST <= start < LATEST - DEFAULT_DURATION else timezone.now()
    end = typed.get("end_at")
    draft.end_at = end if end and draft.start_at < end < LATEST else draft.start_at + DEFAULT_DURATION
    window = (typed.get("window_start"), typed.get("window_end"))
    if all(window) and window[0] != window[1]:
        draft.window_start, draft.window_end = window
    return draft


class ClientForm(forms.ModelForm):
    """A client, and a field for each custom field declared (ClientField), named FIELD_PREFIX + key."""

    FIELD_PREFIX = "field_"
    consent_at = _datetime_field(gettext_lazy("Consent to advertising given at"))

    class Meta:
        model = Client
        fields = ["phone", "name", "tag", "timezone", "consent_at", "consent_source"]
        labels = {
            "phone": gettext_lazy("Phone"),
            "name": pgettext_lazy("client", "Name"),
            "tag": gettext_lazy("Tag"),
            "timezone": gettext_lazy("Time zone"),
            "consent_source": gettext_lazy("How consent was given"),
        }
        help_texts = {
            "phone": gettext_lazy(
                "7, then the operator code (900-999), then 7 digits; +7 or 8 and spaces, dashes "
                "and brackets are fine."
            )
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        consent = self.fields["consent_at"]
        consent.required = False
        consent.help_text = _(
            "%(format)s. Empty: no consent on record, and advertising does not reach this client. "
            "Empty it when the client withdraws consent."
        ) % {"format": formats_hint("DATETIME_INPUT_FORMATS")}
        consent.widget.attrs["placeholder"] = formats_hint("DATETIME_INPUT_FORMATS")
        self.fields["consent_source"].help_text = _("A site form, a paper form's number, a file's name.")
        self.fields["name"].help_text = _("How texts address the client: {name}.")
        self.declared = ClientField.declared()
        for key, label in self.declared.items():
            self.fields[self.FIELD_PREFIX + key] = forms.CharField(
                label=label,
                required=False,
                max_length=ATTRIBUTE_MAX,
                initial=self.instance.attributes.get(key, ""),
                validators=[_printable],
                help_text=f"{{{key}}}",
            )
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean(self) -> dict:
        data = super().clean()
        # Values of fields no longer declared stay as they are (declared again, they come back).
        kept = {k: v for k, v in self.instance.attributes.items() if k not in self.declared}
        typed = {key: data.get(self.FIELD_PREFIX + key, "") for key in self.declared}
        self.instance.attributes = kept | {key: value for key, value in typed.items() if value}
        return data


class ClientFieldForm(forms.ModelForm):
    """Declare a custom field; once declared, only its label changes (texts name it by its key)."""

    class Meta:
        model = ClientField
        fields = ["key", "label"]
        labels = {"key": gettext_lazy("Key"), "label": gettext_lazy("Label")}
        help_texts = {
            "key": gettext_lazy(
                "Latin, e.g. city or promo_code: texts name it {city}, imports by a column of that name."
            ),
            "label": gettext_lazy("What pages show, e.g. Город."),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["key"]
        self.helper = FormHelper()
        self.helper.form_tag = False


def _printable(value: str) -> None:
    if problem := printable_problem(value, ATTRIBUTE_MAX):
        raise ValidationError(problem)


class ImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV or Excel file"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.xlsx,text/csv"}),
    )
    all_or_nothing = forms.BooleanField(
        required=False,
        initial=True,
        label=gettext_lazy("All or nothing: import nothing if any row has an error"),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.fields["file"].help_text = _(
            "Columns: %(columns)s. CSV (comma or semicolon; UTF-8 or "
            "Windows-1251) or an Excel workbook (.xlsx, its first sheet), at most %(mb)s MB."
        ) % {"columns": ", ".join([*COLUMNS, *ClientField.declared()]), "mb": settings.MAILER_IMPORT_MAX_MB}

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if problem := size_problem(upload.size):
            raise ValidationError(problem)
        return upload


class StopEntryForm(forms.Form):
    phone = PhoneFormField(label=gettext_lazy("Phone"))
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500, required=False)


class StopRemovalForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500)


class ApprovalForm(forms.Form):
    """Approve a mailing as its page showed it: a save since (`revision`) is refused (StaleEdit)."""

    revision = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)


class RefusalForm(ApprovalForm):
    reason = forms.CharField(label=gettext_lazy("Reason for refusal"), max_length=REFUSAL_REASON_MAX)
