from django import forms
from django.contrib import admin, messages

from mailer.models import (
    Client,
    ClientField,
    GatewayState,
    Mailing,
    MailingError,
    Message,
    Report,
    TestSend,
    WorkerHeartbeat,
)


class AuditedAdmin(admin.ModelAdmin):
    """Changes made here go to the audit log too (via "admin"), each in its change's transaction."""

    def save_model(self, request, obj, form, change):
        obj.save_by(request.user, via="admin")

    def delete_model(self, request, obj):
        obj.delete_by(request.user, via="admin")

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            obj.delete_by(request.user, via="admin")


@admin.register(Client)
class ClientAdmin(AuditedAdmin):
    list_display = ["id", "phone", "name", "operator_code", "tag", "timezone", "consent_at", "created_at"]
    list_filter = ["operator_code", "tag"]
    search_fields = ["phone", "name_search", "tag", "timezone"]
    readonly_fields = ["operator_code", "created_at", "updated_at"]
    show_full_result_count = False


@admin.register(ClientField)
class ClientFieldAdmin(AuditedAdmin):
    list_display = ["key", "label", "created_at"]


class MailingAdminForm(forms.ModelForm):
    # The revision the page was opened at, as on the mailing form: saving over a newer one is refused.
    read_revision = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["read_revision"].initial = self.instance.revision

    def clean(self) -> dict:
        # Said here as a form error; Mailing.save_edit checks again under the row's lock.
        data = super().clean()
        if self.instance.pk:
            try:
                Mailing.objects.get(pk=self.instance.pk).check_edit(data.get("read_revision"))
            except MailingError as e:
                raise forms.ValidationError(str(e)) from None
        return data


@admin.register(Mailing)
class MailingAdmin(AuditedAdmin):
    """`state` is shown, never edited: it changes only through the mailing's own transitions
    (Mailing.pause, resume, cancel, the engine's start and finish), on its page or in the API."""

    form = MailingAdminForm
    list_display = ["id", "short_text", "kind", "state", "start_at", "end_at", "window_start", "window_end"]
    list_filter = ["state", "kind", "approval", "start_at"]
    search_fields = ["text"]
    date_hierarchy = "start_at"
    readonly_fields = [
        "state",
        "created_by",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "audience_version",
        "resolved_version",
        "resolve_lease_until",
        # Approval changes only on the mailing's page or in the API (Mailing.approve, refuse).
        "approval",
        "approval_sms",
        "approval_asked_by",
        "decided_by",
        "decided_at",
        "refusal_reason",
    ]

    @admin.display(description="text")
    def short_text(self, obj: Mailing) -> str:
        return obj.text[:60]

    def has_change_permission(self, request, obj=None) -> bool:
        # A finished or cancelled mailing is shown read-only, as everywhere else.
        return super().has_change_permission(request, obj) and (obj is None or obj.is_editable)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.can_delete)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save_edit(form.cleaned_data.get("read_revision"), by=request.user, via="admin")
        else:
            obj.created_by = request.user
            obj.save_by(request.user, via="admin")

    def delete_model(self, request, obj):
        obj.delete_unless_running(by=request.user, via="admin")

    def delete_queryset(self, request, queryset):
        for mailing in queryset:
            try:
                mailing.delete_unless_running(by=request.user, via="admin")
            except MailingError as e:
                self.message_user(request, str(e), level=messages.ERROR)


class ReadOnly:
    """A record nobody edits here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnly, admin.ModelAdmin):
    # The delivery record is written by the engine only: edits and bulk deletes here would go
    # around the mailing's counts (MailingCounts) and rewrite what the gateway was told.

    list_display = ["id", "mailing", "client", "status", "attempts", "created_at", "sent_at", "last_error"]
    list_filter = ["status"]
    search_fields = ["=id", "=mailing__id", "client__phone"]
    raw_id_fields = ["mailing", "client"]
    list_select_related = ["mailing", "client"]
    show_full_result_count = False


@admin.register(TestSend)
class TestSendAdmin(ReadOnly, admin.ModelAdmin):
    """The record of test sends: who sent what to whom, and the gateway's answers. Read only."""

    list_display = ["id", "created_at", "created_by", "mailing", "state", "phones"]
    list_filter = ["state"]
    search_fields = ["=id", "=mailing__id", "created_by__username"]
    list_select_related = ["created_by", "mailing"]


@admin.register(GatewayState)
class GatewayStateAdmin(admin.ModelAdmin):
    """The gateway as the workers see it. Clearing the token problem lets them try again."""

    list_display = ["__str__", "breaker_open_until", "consecutive_failures", "last_error_at", "auth_error"]
    readonly_fields = [
        "consecutive_failures",
        "breaker_open_until",
        "last_error",
        "last_error_at",
        "last_success_at",
        "auth_error",
        "auth_failed_token",
        "rate_next_at",
    ]
    actions = ["clear_problems"]

    @admin.action(description="Clear the token problem and close the breaker", permissions=["change"])
    def clear_problems(self, request, queryset):
        queryset.update(auth_error="", auth_failed_token="", breaker_open_until=None, consecutive_failures=0)
        self.message_user(request, "Cleared: the workers will try the gateway again.")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["owner", "slot", "beat_at", "host", "pid"]
    readonly_fields = ["owner", "slot", "beat_at", "host", "pid"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["date", "sent_at", "attempts", "last_error"]
    readonly_fields = [f.name for f in Report._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
