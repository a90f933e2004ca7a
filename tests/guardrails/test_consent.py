"""Consent to advertising: recorded at every door (form, API, import) with when and how, audited,
and required of an advertising mailing's clients when its audience is resolved and again at send
time (MAILER_CONSENT_REQUIRED); a service mailing does not ask for it; the stop list always holds."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from engine import scheduling
from mailer.importing import run_import
from mailer.models import (
    NO_CONSENT_WHY,
    AuditEntry,
    Client,
    Mailing,
    MailingCounts,
    MailingKind,
    Message,
    MessageStatus,
    StopEntry,
)
from tests.engine.conftest import drain
from tests.guardrails.conftest import HTMX


def test_the_api_records_consent_with_its_source_and_audits_it(api, now):
    body = {"phone": "+7 916 123-45-67", "consent_at": (now - timedelta(days=1)).isoformat()}
    response = api.post("/api/v1/clients/", body, format="json")
    assert response.status_code == 400 and "consent_source" in response.json()
    response = api.post(
        "/api/v1/clients/", body | {"consent_at": (now + timedelta(days=1)).isoformat()}, format="json"
    )
    assert response.json()["consent_at"] == ["Consent can't be dated in the future."]

    created = api.post("/api/v1/clients/", body | {"consent_source": "site form"}, format="json").json()
    assert created["consent_source"] == "site form"
    client = Client.objects.get()
    assert client.consent_at == now - timedelta(days=1)
    given = AuditEntry.objects.get(action="consent_given", object_id=str(client.pk))
    assert given.changes == {
        "consent_at": [None, client.consent_at.isoformat()],
        "consent_source": [None, "site form"],
    }
    assert given.via == "api" and given.actor_name == "manager"

    withdrawn = api.patch(f"/api/v1/clients/{client.pk}/", {"consent_at": None}, format="json").json()
    assert (withdrawn["consent_at"], withdrawn["consent_source"]) == (None, "")  # no "how" without a "when"
    entry = AuditEntry.objects.get(action="consent_withdrawn", object_id=str(client.pk))
    assert entry.changes == {
        "consent_at": [client.consent_at.isoformat(), None],
        "consent_source": ["site form", ""],
    }
    assert [c["phone"] for c in api.get("/api/v1/clients/?consent=false").json()["results"]] == [
        "79161234567"
    ]
    assert api.get("/api/v1/clients/?consent=true").json()["results"] == []


def test_the_client_form_records_and_withdraws_consent(manager_client):
    form = {
        "phone": "8 916 123 45 67",
        "tag": "",
        "timezone": "Europe/Moscow",
        "consent_at": "01.12.2026 10:30",
    }
    response = manager_client.post("/clients/new/", form)
    assert "Say how the client agreed" in response.content.decode()
    response = manager_client.post(
        "/clients/new/", form | {"consent_at": "2026-12-01 10:30", "consent_source": "анкета № 12"}
    )
    assert response.status_code == 302
    client = Client.objects.get()
    assert client.consent_at == timezone.make_aware(datetime(2026, 12, 1, 10, 30))  # in the user's zone
    assert manager_client.post(f"/clients/{client.pk}/", form | {"consent_at": ""}).status_code == 302
    client.refresh_from_db()
    assert (client.consent_at, client.consent_source) == (None, "")
    assert list(
        AuditEntry.objects.filter(object_id=str(client.pk)).order_by("id").values_list("action", flat=True)
    ) == [
        "created",
        "consent_given",
        "consent_withdrawn",
    ]
    listed = manager_client.get("/clients/?consent=no").content.decode()
    assert "79161234567" in listed and "none" in listed


@pytest.mark.django_db
def test_advertising_reaches_only_clients_with_consent_and_service_everyone_off_the_stop_list(
    make_client, settings
):
    agreed = make_client()
    silent = make_client(consent_at=None)
    stopped = make_client()
    stopped_silent = make_client(consent_at=None)
    for client in (stopped, stopped_silent):
        StopEntry.opt_out(client.phone, "ui")
    advertising = Mailing(kind=MailingKind.ADVERTISING)
    service = Mailing(kind=MailingKind.SERVICE)
    assert set(advertising.matching_clients()) == {agreed}
    assert set(service.matching_clients()) == {agreed, silent}
    assert advertising.audience_counts() == {
        "audience": 1,
        "stop_list": 2,
        "no_consent": 1,
        "undeliverable": 0,
        "capped": 0,
    }
    assert service.audience_counts() == {
        "audience": 2,
        "stop_list": 2,
        "no_consent": 0,
        "undeliverable": 0,
        "capped": 0,
    }
    settings.MAILER_CONSENT_REQUIRED = False
    assert set(advertising.matching_clients()) == {agreed, silent}


@pytest.mark.django_db
def test_consent_is_checked_again_when_the_message_s_turn_comes(make_client, make_deliverer, provider, now):
    agreed, withdrawn, silent = make_client(), make_client(), make_client(consent_at=None)
    advertising = Mailing.objects.create(text="Sale", start_at=now, end_at=now + timedelta(hours=1))
    service = Mailing.objects.create(
        text="Order", kind=MailingKind.SERVICE, start_at=now, end_at=now + timedelta(hours=1)
    )
    scheduling.tick(now)  # both resolved: advertising without the silent client
    assert Message.objects.filter(mailing=advertising).count() == 2
    assert MailingCounts.objects.get(mailing=advertising).no_consent == 1
    withdrawn.consent_at = None
    withdrawn.save_by(None)

    drain(make_deliverer(), now)
    cancelled = Message.objects.get(mailing=advertising, client=withdrawn)
    assert (cancelled.status, cancelled.last_error) == (MessageStatus.CANCELLED, NO_CONSENT_WHY)
    sent = {m.pk for m in Message.objects.filter(status=MessageStatus.SENT)}
    assert set(provider.record.accepted) == sent and set(provider.record.accepted.values()) == {1}
    assert Message.objects.get(mailing=advertising, client=agreed).status == MessageStatus.SENT
    assert not Message.objects.filter(mailing=advertising, client=silent).exists()
    assert Message.objects.filter(mailing=service, status=MessageStatus.SENT).count() == 3
    assert MailingCounts.objects.get(mailing=advertising).no_consent == 2  # one left out, one stopped
    assert MailingCounts.objects.get(mailing=service).no_consent == 0


@pytest.mark.django_db
def test_the_preview_page_statistics_and_api_count_who_consent_left_out(
    manager_client, api, make_client, now
):
    for _ in range(3):
        make_client(tag="vip")
    make_client(tag="vip", consent_at=None)
    html = manager_client.get(
        "/mailings/audience/", {"filter_tags": "vip", "kind": "advertising"}, **HTMX
    ).content.decode()
    assert '<strong id="audience-count">3</strong>' in html
    assert "1 client without consent to advertising left out." in html
    html = manager_client.get(
        "/mailings/audience/", {"filter_tags": "vip", "kind": "service"}, **HTMX
    ).content.decode()
    assert '<strong id="audience-count">4</strong>' in html and "without consent" not in html

    mailing = Mailing.objects.create(
        text="Sale", filter_tags=["vip"], start_at=now, end_at=now + timedelta(hours=1)
    )
    scheduling.tick(now)
    page = manager_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert '<span id="no-consent">1 left out for want of consent</span>' in page
    assert api.get(f"/api/v1/mailings/{mailing.pk}/stats/").json()["no_consent"] == 1
    assert api.get("/api/v1/stats/").json()["mailings"][0]["no_consent"] == 1
    csv_text = b"".join(manager_client.get("/statistics/mailings.csv").streaming_content).decode("utf-8-sig")
    [row] = csv.DictReader(io.StringIO(csv_text))
    assert row["No consent"] == "1"


def _upload(api, text: str, name: str = "clients-2026-12.csv"):
    response = api.post(
        "/api/v1/clients/import/",
        {"file": SimpleUploadedFile(name, text.encode(), content_type="text/csv")},
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    run_import(response.json()["id"])
    return api.get(response["Location"]).json()


def test_the_import_records_consent_and_reports_bad_dates(api):
    Client.objects.create(phone="79031234567")
    text = (
        "Телефон;Согласие;Источник согласия\n"
        "79161234567;01.12.2026 10:30;анкета № 5\n"
        "79261234567;2026-11-30;\n"
        "79031234567;30.11.2026;\n"  # known: consent recorded, updated
        "79361234567;;\n"  # no consent
    )
    report = _upload(api, text)
    assert (report["created"], report["updated"], report["consented"], report["error_count"]) == (3, 1, 3, 0)
    clients = {c.phone: c for c in Client.objects.all()}
    assert (clients["79161234567"].consent_at, clients["79161234567"].consent_source) == (
        timezone.make_aware(datetime(2026, 12, 1, 10, 30)),  # in the server's zone
        "анкета № 5",
    )
    assert clients["79261234567"].consent_source == "import clients-2026-12.csv"
    assert clients["79031234567"].consent_at is not None and clients["79361234567"].consent_at is None
    entry = AuditEntry.objects.get(action="consent_given", via="import")
    assert sorted(entry.changes["phones"][1]) == ["79031234567", "79161234567", "79261234567"]

    report = _upload(
        api,
        "phone,consent_at,consent_source\n79461234567,31.02.2026,x\n79561234567,01.01.2099,\n79661234567,,site\n",
    )
    assert report["written"] is False
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (2, "consent_at"),
        (3, "consent_at"),
        (4, "consent_source"),
    ]
    assert "Not a date" in report["errors"][0]["message"] and "future" in report["errors"][1]["message"]


def test_an_imported_time_of_consent_is_the_uploader_s(api, manager):
    from accounts.models import Profile

    Profile.objects.create(user=manager, timezone="Asia/Vladivostok")
    report = _upload(api, "phone;consent_at\n79161234567;01.12.2026 10:30\n")
    assert report["consented"] == 1
    assert Client.objects.get().consent_at == datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 10:30 at UTC+10
    entry = AuditEntry.objects.get(action="consent_given")
    assert (entry.object_type, entry.changes["filename"][1]) == ("import", "clients-2026-12.csv")


@pytest.mark.django_db
def test_before_it_starts_the_page_counts_who_consent_leaves_out_now(manager_client, make_client, now):
    make_client(), make_client(consent_at=None), make_client(consent_at=None)
    mailing = Mailing.objects.create(
        text="Sale", start_at=now + timedelta(hours=1), end_at=now + timedelta(hours=2)
    )
    page = manager_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert '<span id="no-consent">2 left out for want of consent</span>' in page
