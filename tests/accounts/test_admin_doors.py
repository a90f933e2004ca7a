"""The Django admin is a door into the same rules: a mailing's state changes only through its
transitions, a revoked token stays revoked, and every save or delete leaves its audit entry."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from accounts.models import ApiToken
from engine import scheduling
from mailer.models import AuditEntry, Mailing, MailingState

pytestmark = pytest.mark.django_db


def change_form(mailing: Mailing, **overrides) -> dict:
    """What the admin's change form posts for `mailing`, with `overrides`."""
    local = {name: timezone.localtime(getattr(mailing, name)) for name in ("start_at", "end_at")}
    data = {
        "text": mailing.text,
        "kind": mailing.kind,
        "start_at_0": local["start_at"].strftime("%Y-%m-%d"),
        "start_at_1": local["start_at"].strftime("%H:%M:%S"),
        "end_at_0": local["end_at"].strftime("%Y-%m-%d"),
        "end_at_1": local["end_at"].strftime("%H:%M:%S"),
        "filter_tags": "[]",
        "filter_operator_codes": "[]",
        "window_start": "",
        "window_end": "",
        "read_revision": str(mailing.revision),
        **({"track_links": "on"} if mailing.track_links else {}),
    }
    return {**data, **overrides}


def test_a_cancelled_mailing_cannot_be_set_back_to_scheduled(admin_client, make_mailing, make_client, now):
    make_client()
    mailing = make_mailing()
    mailing.cancel()

    response = admin_client.post(
        f"/admin/mailer/mailing/{mailing.pk}/change/", change_form(mailing, state="scheduled")
    )

    assert response.status_code == 403  # a cancelled mailing is read-only
    scheduling.start_due(now)
    mailing.refresh_from_db()
    assert mailing.state == MailingState.CANCELLED
    assert not mailing.messages.exists()


def test_a_superusers_edit_keeps_the_state_and_is_audited(admin_client, make_mailing):
    mailing = make_mailing(text="Old")

    response = admin_client.post(
        f"/admin/mailer/mailing/{mailing.pk}/change/", change_form(mailing, text="New", state="cancelled")
    )

    assert response.status_code == 302
    mailing.refresh_from_db()
    assert (mailing.text, mailing.state) == ("New", MailingState.SCHEDULED)
    entry = AuditEntry.objects.get(object_type="mailing", action="edited")
    assert (entry.via, entry.changes) == ("admin", {"text": ["Old", "New"]})


def test_an_edit_from_an_older_revision_is_refused(admin_client, make_mailing):
    mailing = make_mailing(text="Old")
    form = change_form(mailing, text="Mine")
    Mailing.objects.get(pk=mailing.pk).save_edit(mailing.revision, via="ui")  # someone else saves

    response = admin_client.post(f"/admin/mailer/mailing/{mailing.pk}/change/", form)

    assert response.status_code == 200
    assert b"changed by someone else" in response.content
    mailing.refresh_from_db()
    assert mailing.text == "Old"


def test_a_running_mailing_is_not_deleted_here(admin_client, make_mailing):
    mailing = make_mailing(state=MailingState.RUNNING)

    response = admin_client.post(f"/admin/mailer/mailing/{mailing.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert Mailing.objects.filter(pk=mailing.pk).exists()


def test_a_revoked_token_stays_revoked(admin_client, django_user_model):
    owner = django_user_model.objects.create_superuser("root2", "r2@example.com", "pw")
    token, _ = ApiToken.issue(owner, "old name")
    token.revoke()

    response = admin_client.post(
        f"/admin/accounts/apitoken/{token.pk}/change/",
        {"name": "new name", "revoked_at_0": "", "revoked_at_1": ""},
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.name == "new name"
    entry = AuditEntry.objects.get(object_type="token", action="edited")
    assert (entry.via, entry.changes["name"]) == ("admin", ["old name", "new name"])


def test_revoking_and_deleting_tokens_here_is_audited(admin_client, django_user_model):
    owner = django_user_model.objects.create_user("owner", password="pw")
    kept, _ = ApiToken.issue(owner, "kept")
    gone, _ = ApiToken.issue(owner, "gone")

    admin_client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [str(kept.pk)]})
    admin_client.post(f"/admin/accounts/apitoken/{gone.pk}/delete/", {"post": "yes"})

    kept.refresh_from_db()
    assert kept.revoked_at is not None
    assert not ApiToken.objects.filter(pk=gone.pk).exists()
    actions = set(
        AuditEntry.objects.filter(object_type="token", via="admin").values_list("action", "object_id")
    )
    assert actions == {("token_revoked", str(kept.pk)), ("deleted", str(gone.pk))}


@pytest.mark.parametrize(
    "model", ["mailer/mailing", "mailer/client", "accounts/apitoken", "axes/accessattempt"]
)
def test_the_admin_role_only_looks(client, admin, model):
    assert client.get(f"/admin/{model}/").status_code == 200
    assert client.get(f"/admin/{model}/add/").status_code == 403


def test_the_admin_role_cannot_change_mailings_or_tokens_here(client, admin, make_mailing):
    mailing = make_mailing()
    mailing.cancel()
    token, _ = ApiToken.issue(admin, "mine")
    token.revoke()

    assert client.post(f"/admin/mailer/mailing/{mailing.pk}/change/", change_form(mailing)).status_code == 403
    assert client.post(f"/admin/mailer/mailing/{mailing.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/accounts/apitoken/{token.pk}/change/", {"name": "x"}).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is not None and token.name == "mine"


def test_the_admin_role_cannot_reset_a_superusers_lockout(client, admin):
    attempt = AccessAttempt.objects.create(
        username="root", ip_address="10.0.0.1", user_agent="x", failures_since_start=30
    )

    response = client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    bulk = client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [str(attempt.pk)], "post": "yes"},
    )

    assert response.status_code == 403
    assert bulk.status_code in (200, 302)
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()
