"""A mailing's record holds: a running one is not deleted, a stale edit is refused, and each message
keeps the text it was sent with."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from mailer.models import Mailing, MailingError, MailingState, Message, MessageStatus, StaleEdit
from tests.engine.conftest import drain

pytestmark = pytest.mark.django_db


def _api(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_a_running_mailing_is_not_deleted_by_any_way(admin_user, client, make_mailing, make_client):
    mailing = make_mailing(state=MailingState.RUNNING)
    Message.objects.create(mailing=mailing, client=make_client())
    response = _api(admin_user).delete(f"/api/v1/mailings/{mailing.pk}/")
    assert response.status_code == 409
    assert response.json() == {"detail": f"Mailing #{mailing.pk} is running: pause or cancel it first."}
    client.force_login(admin_user)
    response = client.post(f"/mailings/{mailing.pk}/delete/", follow=True)
    assert f"Mailing #{mailing.pk} is running: pause or cancel it first." in response.content.decode()
    with pytest.raises(MailingError):
        mailing.delete_unless_running()
    assert Mailing.objects.filter(pk=mailing.pk).exists() and Message.objects.filter(mailing=mailing).exists()

    mailing.pause()
    assert _api(admin_user).delete(f"/api/v1/mailings/{mailing.pk}/").status_code == 204
    assert not Message.objects.exists()


def test_api_etag_and_if_match(admin_user, make_mailing):
    api = _api(admin_user)
    mailing = make_mailing(text="First")
    url = f"/api/v1/mailings/{mailing.pk}/"
    etag = api.get(url)["ETag"]
    assert etag == f'"{mailing.revision}"'

    # Someone else saves meanwhile; the change made from the old revision is refused.
    changed = api.patch(url, {"text": "Theirs"}, format="json", HTTP_IF_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    stale = api.patch(url, {"text": "Mine"}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert "changed by someone else" in stale.json()["detail"]
    assert api.delete(url, HTTP_IF_MATCH=etag).status_code == 412
    mailing.refresh_from_db()
    assert mailing.text == "Theirs"

    assert api.patch(url, {"text": "Mine"}, format="json", HTTP_IF_MATCH=changed["ETag"]).status_code == 200
    assert api.patch(url, {"text": "No check"}, format="json").status_code == 200  # If-Match is optional
    assert api.patch(url, {"text": "x"}, format="json", HTTP_IF_MATCH="garbage²").status_code == 412
    assert api.delete(url, HTTP_IF_MATCH=api.get(url)["ETag"]).status_code == 204


def test_two_managers_editing_at_once_get_a_conflict_not_a_lost_update(admin_user, client, make_mailing, now):
    mailing = make_mailing(start_at=now + timedelta(hours=1), end_at=now + timedelta(hours=2), text="Old")
    client.force_login(admin_user)
    url = f"/mailings/{mailing.pk}/edit/"
    # Both open the form at the same revision.
    form = {
        "start_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "end_at": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "revision": client.get(url).context["form"]["revision"].value(),
    }
    assert client.post(url, form | {"text": "Alice's text"}).status_code == 302
    response = client.post(url, form | {"text": "Bob's text"})
    assert response.status_code == 200
    assert "changed by someone else since you opened it" in response.content.decode()
    assert response.context["form"]["text"].value() == "Bob's text"  # not lost either
    mailing.refresh_from_db()
    assert mailing.text == "Alice's text"
    with pytest.raises(StaleEdit):
        mailing.save_edit(mailing.revision - 1)


def test_each_message_keeps_the_text_it_was_sent_with(
    admin_user, client, make_mailing, make_client, make_deliverer, provider
):
    for _ in range(10):
        make_client()
    mailing = make_mailing(text="Sale: 10% off")
    deliverer = make_deliverer(batch_size=4)
    drain(deliverer, rounds=1)  # one round: the first four
    mailing.refresh_from_db()
    mailing.text = "Sale: 20% off"
    mailing.save_edit(mailing.revision)
    drain(deliverer)
    messages = list(Message.objects.filter(mailing=mailing).select_related("sent_text"))
    assert {m.status for m in messages} == {MessageStatus.SENT}
    carried = {m.id: m.sent_text.text for m in messages}
    assert carried == provider.record.texts  # what the gateway really got
    assert sorted(carried.values()) == ["Sale: 10% off"] * 4 + ["Sale: 20% off"] * 6

    api = _api(admin_user).get(f"/api/v1/mailings/{mailing.pk}/messages/").json()
    assert {m["id"]: m["text"] for m in api["results"]} == carried

    client.force_login(admin_user)
    body = b"".join(client.get(f"/mailings/{mailing.pk}/messages.csv").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body[1:])))
    assert {int(r["Message no."]): r["Text"] for r in rows} == carried

    page = client.get(f"/mailings/{mailing.pk}/")
    assert [(t.number, t.text, t.sent) for t in page.context["texts"]] == [
        (1, "Sale: 10% off", 4),
        (2, "Sale: 20% off", 6),
    ]
    assert "the text was changed while it was sent" in page.content.decode()
