"""Mailing.kind: advertising (the default) or service, at every door and in every view of it."""

from __future__ import annotations

import re
from datetime import timedelta

from mailer import audit
from mailer.models import AuditEntry, Mailing, MailingKind


def _body(now, **fields):
    return {
        "text": "Your order is ready",
        "start_at": (now + timedelta(hours=1)).isoformat(),
        "end_at": (now + timedelta(hours=5)).isoformat(),
        **fields,
    }


def test_the_api_takes_the_kind_and_lists_by_it(api, now):
    advertising = api.post("/api/v1/mailings/", _body(now), format="json").json()
    service = api.post("/api/v1/mailings/", _body(now, kind="service"), format="json").json()
    assert (advertising["kind"], service["kind"]) == ("advertising", "service")
    listed = api.get("/api/v1/mailings/?kind=service").json()["results"]
    assert [m["id"] for m in listed] == [service["id"]]

    response = api.post("/api/v1/mailings/", _body(now, kind="promo"), format="json")
    assert response.status_code == 400 and "kind" in response.json()
    response = api.patch(f"/api/v1/mailings/{service['id']}/", {"kind": "advertising"}, format="json")
    assert response.status_code == 200
    entry = AuditEntry.objects.filter(object_id=str(service["id"]), action="edited").get()
    assert entry.changes == {"kind": ["service", "advertising"]}


def test_the_form_page_list_and_statistics_show_the_kind(manager_client, now):
    form = {
        "text": "Ваш заказ готов",
        "kind": "service",
        "start_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "end_at": (now + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M"),
    }
    response = manager_client.post("/mailings/new/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    service = Mailing.objects.get()
    assert service.kind == MailingKind.SERVICE
    advertising = Mailing.objects.create(text="Sale", start_at=service.start_at, end_at=service.end_at)

    page = manager_client.get(f"/mailings/{service.pk}/").content.decode()
    assert '<dd class="col-sm-9" id="kind">Service</dd>' in page
    listed = manager_client.get("/mailings/?kind=service").content.decode()
    assert f'href="/mailings/{service.pk}/"' in listed and f'href="/mailings/{advertising.pk}/"' not in listed
    stats = manager_client.get("/statistics/?kind=advertising").content.decode()
    assert f'href="/mailings/{advertising.pk}/"' in stats and f'href="/mailings/{service.pk}/"' not in stats
    # The edit form keeps it; the audit log reads it in words.
    edit = manager_client.get(f"/mailings/{service.pk}/edit/").content.decode()
    assert re.search(r"<input[^>]*value=\"service\"[^>]*checked", edit)
    response = manager_client.post(
        f"/mailings/{service.pk}/edit/", form | {"kind": "advertising", "revision": service.revision}
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.filter(object_id=str(service.pk), action="edited").get()
    assert audit.changes_text(entry.changes) == "kind: Service → Advertising"
