"""The audit log: each change a person (or the engine) makes is recorded, with who, what, when and
the changed fields, in the same transaction as the change; admins read it on a page with filters
and through the API."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone, translation
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.roles import ADMIN, VIEWER
from engine import scheduling
from mailer.models import AuditEntry, Client, Mailing, MailingError, MailingState, StopEntry
from tests.conftest import user_with_role
from tests.dashboard.conftest import HTMX

pytestmark = pytest.mark.django_db


def entries() -> list[tuple]:
    return list(
        AuditEntry.objects.order_by("id").values_list(
            "actor_name", "via", "action", "object_type", "object_id"
        )
    )


def test_a_mailing_s_life_in_the_ui(manager_client, manager, now):
    local = timezone.localtime(now + timedelta(hours=1))
    form = {
        "text": "Spring sale",
        "start_at": local.strftime("%Y-%m-%d %H:%M"),
        "end_at": (local + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M"),
        "filter_tags": [],
    }
    manager_client.post("/mailings/new/", form)
    mailing = Mailing.objects.get()
    created = AuditEntry.objects.get(action="created")
    assert created.changes["text"] == [None, "Spring sale"] and created.actor == manager
    manager_client.post(
        f"/mailings/{mailing.pk}/edit/", form | {"text": "Spring sale!", "revision": mailing.revision}
    )
    edited = AuditEntry.objects.get(action="edited")
    assert edited.changes == {"text": ["Spring sale", "Spring sale!"]}  # only what changed
    for verb in ("pause", "resume", "cancel"):
        manager_client.post(f"/mailings/{mailing.pk}/{verb}/")
    manager_client.post(f"/mailings/{mailing.pk}/delete/")
    m = str(mailing.pk)
    assert entries() == [
        ("manager", "ui", "created", "mailing", m),
        ("manager", "ui", "edited", "mailing", m),
        ("manager", "ui", "paused", "mailing", m),
        ("manager", "ui", "resumed", "mailing", m),
        ("manager", "ui", "cancelled", "mailing", m),
        ("manager", "ui", "deleted", "mailing", m),
    ]
    assert AuditEntry.objects.get(action="cancelled").changes == {"state": ["scheduled", "cancelled"]}


def test_the_engine_starting_and_finishing_a_mailing_is_recorded(make_mailing, make_client, now):
    make_client()
    mailing = make_mailing(start_at=now, end_at=now + timedelta(hours=1))
    scheduling.tick(now)
    m = str(mailing.pk)
    assert entries() == [("", "engine", "started", "mailing", m)]
    assert AuditEntry.objects.get(action="started").changes == {"state": ["scheduled", "running"]}

    scheduling.tick(now + timedelta(hours=1))  # its end: the pending message expires, it finishes
    assert entries()[-1] == ("", "engine", "finished", "mailing", m)
    assert AuditEntry.objects.get(action="finished").changes == {"state": ["running", "finished"]}


def test_every_state_change_has_a_word_and_a_filter_choice(admin_client):
    from mailer import audit

    assert set(Mailing.TRANSITIONS) <= set(audit.ACTIONS)
    with translation.override("ru"):
        assert str(audit.ACTIONS["finished"]) == "завершено"
    assert admin_client.get("/audit/?action=finished").status_code == 200


def test_a_change_and_its_entry_are_one_transaction(manager_client, make_mailing, monkeypatch):
    mailing = make_mailing()

    def broken(*args, **kwargs):
        raise RuntimeError("the audit log is down")

    monkeypatch.setattr(AuditEntry, "record", broken)
    with pytest.raises(RuntimeError):
        mailing.pause()
    mailing.refresh_from_db()
    assert mailing.state == MailingState.SCHEDULED  # no change without its entry
    monkeypatch.undo()
    # And no entry without its change: a transition that is refused writes nothing.
    mailing.cancel()
    with pytest.raises(MailingError):
        mailing.pause()
    assert [e[2] for e in entries()] == ["cancelled"]


def test_clients_stop_list_tokens_users_and_test_sends(client, django_user_model, make_client):
    admin = user_with_role(django_user_model, ADMIN, "boss")
    bob = user_with_role(django_user_model, VIEWER, "bob")
    client.force_login(admin)
    client.post("/clients/new/", {"phone": "79161234567", "tag": "vip", "timezone": "UTC"})
    person = Client.objects.get()
    client.post(f"/clients/{person.pk}/", {"phone": "79161234567", "tag": "gold", "timezone": "UTC"})
    client.post("/stop-list/add/", {"phone": "79161234567", "reason": "asked"})
    client.post(f"/stop-list/{StopEntry.objects.get().pk}/remove/", {"reason": "consented"})
    client.post(f"/accounts/users/{bob.pk}/role/", {"role": "manager"})
    client.post(f"/accounts/users/{bob.pk}/active/", {"active": "0"})
    client.post("/accounts/tokens/new/", {"name": "CRM", "days": "30"})
    client.post(f"/accounts/tokens/{ApiToken.objects.get().pk}/revoke/")
    client.post("/mailings/test-send/", {"text": "Hi", "test_phones": "79261234567"}, **HTMX)
    client.post(f"/clients/{person.pk}/delete/")
    actions = [(e[2], e[3]) for e in entries()]
    assert actions == [
        ("created", "client"),
        ("edited", "client"),
        ("opted_out", "stop_list"),
        ("opted_in", "stop_list"),
        ("role_changed", "user"),
        ("deactivated", "user"),
        ("token_created", "token"),
        ("token_revoked", "token"),
        ("test_sent", "test_send"),
        ("deleted", "client"),
    ]
    assert AuditEntry.objects.get(action="edited").changes == {"tag": ["vip", "gold"]}
    assert AuditEntry.objects.get(action="role_changed").changes == {"role": ["viewer", "manager"]}
    assert AuditEntry.objects.get(action="opted_in").changes == {"removal_reason": [None, "consented"]}
    assert AuditEntry.objects.get(action="test_sent").changes["phones"] == [None, ["79261234567"]]
    assert {e[0] for e in entries()} == {"boss"}


def test_imports_and_the_api_are_recorded(django_user_model):
    manager = user_with_role(django_user_model, "manager", "api-user")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(manager, 'x')[1]}")
    AuditEntry.objects.all().delete()
    upload = io.BytesIO(b"phone,tag,opted_out\n79161234567,vip,yes\n")
    upload.name = "c.csv"
    assert api.post("/api/v1/clients/import/", {"file": upload}, format="multipart").status_code == 202
    now = timezone.now()
    body = {
        "text": "Hi",
        "start_at": (now + timedelta(hours=1)).isoformat(),
        "end_at": (now + timedelta(hours=2)).isoformat(),
    }
    mailing_id = api.post("/api/v1/mailings/", body, format="json").json()["id"]
    api.post(f"/api/v1/mailings/{mailing_id}/pause/")
    api.post("/api/v1/stop-list/", {"phone": "79261234567"}, format="json")
    assert entries() == [
        ("api-user", "api", "import_started", "import", entries()[0][4]),
        ("api-user", "api", "created", "mailing", str(mailing_id)),
        ("api-user", "api", "paused", "mailing", str(mailing_id)),
        ("api-user", "api", "opted_out", "stop_list", str(StopEntry.objects.get().pk)),
    ]


def test_the_page_and_the_api_are_for_admins_with_filters(client, django_user_model, make_mailing):
    admin = user_with_role(django_user_model, ADMIN, "boss")
    manager = user_with_role(django_user_model, "manager", "mila")
    mailing = make_mailing(text="A")
    mailing.pause(by=manager)
    mailing.resume(by=admin)
    client.force_login(manager)
    assert client.get("/audit/").status_code == 403
    client.force_login(admin)
    page = client.get("/audit/").content.decode()
    assert "mila" in page and "paused" in page and f'href="/mailings/{mailing.pk}/"' in page
    only_mila = client.get("/audit/?actor=mila", **HTMX).content.decode()
    assert "paused" in only_mila and "resumed" not in only_mila
    assert "state: Scheduled → Paused" in only_mila
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert (
        "paused"
        not in client.get(f"/audit/?since={tomorrow}", **HTMX).content.decode().split('id="table"')[1]
    )

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(admin, 'x')[1]}")
    listed = api.get("/api/v1/audit/?action=paused").json()["results"]
    assert [(e["actor"], e["object_id"], e["changes"]) for e in listed] == [
        ("mila", str(mailing.pk), {"state": ["scheduled", "paused"]})
    ]
    assert api.get("/api/v1/audit/?action=nonsense").status_code == 400
    viewer_api = APIClient()
    viewer_api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(manager, 'y')[1]}")
    assert viewer_api.get("/api/v1/audit/").status_code == 403


def test_changes_in_the_django_admin_are_recorded(client, django_user_model, make_client):
    root = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(root)
    person = make_client(tag="vip", consent_at=None)
    response = client.post(
        f"/admin/mailer/client/{person.pk}/change/", {"phone": person.phone, "tag": "gold", "timezone": "UTC"}
    )
    assert response.status_code == 302
    client.post(f"/admin/mailer/client/{person.pk}/delete/", {"post": "yes"})
    assert entries() == [
        ("root", "admin", "edited", "client", str(person.pk)),
        ("root", "admin", "deleted", "client", str(person.pk)),
    ]
    assert AuditEntry.objects.get(action="edited").changes == {"tag": ["vip", "gold"]}
