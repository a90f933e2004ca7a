"""Creating, editing and controlling mailings and clients: permissions, validation, messages, htmx."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client as HttpClient

from mailer.models import Client, Mailing, MailingState, Message
from tests.dashboard.conftest import HTMX

pytestmark = pytest.mark.django_db


def _mailing_form(now, **overrides):
    data = {
        "text": "Autumn sale, 20% off",
        "start_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "end_at": (now + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M"),
        "window_start": "09:00",
        "window_end": "21:00",
    }
    return data | overrides


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_create_mailing(manager_client, manager, make_client, now):
    make_client(tag="vip")
    response = manager_client.post(
        "/mailings/new/",
        _mailing_form(now, filter_tags=["vip"], new_tags="newcomers, vip", filter_operator_codes=["900"]),
        follow=True,
    )
    mailing = Mailing.objects.get()
    assert response.redirect_chain[-1][0] == f"/mailings/{mailing.pk}/"
    assert mailing.created_by == manager
    assert mailing.filter_tags == ["newcomers", "vip"]
    assert mailing.filter_operator_codes == ["900"]
    assert f"{mailing.window_start:%H:%M}-{mailing.window_end:%H:%M}" == "09:00-21:00"
    assert any("created" in m for m in _messages(response))


def test_create_mailing_shows_model_validation(manager_client, now):
    data = _mailing_form(now, end_at=(now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), window_end="")
    response = manager_client.post("/mailings/new/", data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "End must be after start." in html
    assert "Give both ends of the window, or neither." in html
    assert not Mailing.objects.exists()


def test_operator_code_picker_offers_only_existing_codes(manager_client, make_client, now):
    make_client(phone="79161234567")
    html = manager_client.get("/mailings/new/").content.decode()
    assert 'value="916"' in html and 'value="999"' not in html
    response = manager_client.post("/mailings/new/", _mailing_form(now, filter_operator_codes=["999"]))
    assert "Select a valid choice" in response.content.decode()
    assert not Mailing.objects.exists()


def test_audience_count_follows_filter(viewer_client, make_client):
    make_client(phone="79001111111", tag="vip")
    make_client(phone="79161111111", tag="vip")
    make_client(phone="79162222222", tag="retail")

    def count(query: str) -> str:
        response = viewer_client.get(f"/mailings/audience/?{query}", **HTMX)
        assert response.status_code == 200
        return response.content.decode()

    assert '<strong id="audience-count">3</strong>' in count("")
    assert '<strong id="audience-count">2</strong>' in count("filter_tags=vip")
    assert '<strong id="audience-count">1</strong>' in count("filter_tags=vip&filter_operator_codes=916")
    assert '<strong id="audience-count">3</strong>' in count("filter_tags=vip&new_tags=retail")
    assert '<strong id="audience-count">0</strong>' in count("new_tags=nobody")


def test_viewer_cannot_create_or_edit(viewer_client, make_mailing, now):
    mailing = make_mailing()
    assert viewer_client.get("/mailings/new/").status_code == 403
    assert viewer_client.post("/mailings/new/", _mailing_form(now)).status_code == 403
    assert viewer_client.post(f"/mailings/{mailing.pk}/edit/", _mailing_form(now)).status_code == 403
    assert Mailing.objects.count() == 1


def test_edit_mailing(manager_client, make_mailing, now):
    mailing = make_mailing(text="Old text")
    response = manager_client.post(f"/mailings/{mailing.pk}/edit/", _mailing_form(now, text="New text"))
    assert response.status_code == 302
    mailing.refresh_from_db()
    assert mailing.text == "New text"


@pytest.mark.parametrize("state", [MailingState.FINISHED, MailingState.CANCELLED])
def test_edit_of_finished_mailing_is_refused(manager_client, make_mailing, now, state):
    mailing = make_mailing(text="Done", state=state)
    response = manager_client.post(
        f"/mailings/{mailing.pk}/edit/", _mailing_form(now, text="Changed"), follow=True
    )
    mailing.refresh_from_db()
    assert mailing.text == "Done"
    assert any("can no longer be edited" in m for m in _messages(response))
    assert ">Edit<" not in manager_client.get(f"/mailings/{mailing.pk}/").content.decode()


def test_pause_resume_cancel(manager_client, make_mailing):
    mailing = make_mailing(state=MailingState.RUNNING)
    response = manager_client.post(f"/mailings/{mailing.pk}/pause/", follow=True)
    mailing.refresh_from_db()
    assert mailing.state == MailingState.PAUSED
    assert any("paused" in m for m in _messages(response))
    manager_client.post(f"/mailings/{mailing.pk}/resume/")
    mailing.refresh_from_db()
    assert mailing.state == MailingState.SCHEDULED
    manager_client.post(f"/mailings/{mailing.pk}/cancel/")
    mailing.refresh_from_db()
    assert mailing.state == MailingState.CANCELLED


def test_refused_transition_says_why(manager_client, make_mailing):
    mailing = make_mailing(state=MailingState.FINISHED)
    response = manager_client.post(f"/mailings/{mailing.pk}/pause/", follow=True)
    assert any("can't be changed" in m for m in _messages(response))
    mailing.refresh_from_db()
    assert mailing.state == MailingState.FINISHED


def test_htmx_control_rerenders_summary(manager_client, make_mailing):
    mailing = make_mailing(state=MailingState.RUNNING)
    response = manager_client.post(f"/mailings/{mailing.pk}/pause/", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="summary"')
    assert f"Mailing #{mailing.pk} paused." in html
    assert ">Resume</button>" in html and ">Pause</button>" not in html


@pytest.mark.parametrize("action", ["pause", "resume", "cancel", "delete"])
def test_viewer_gets_403_on_controls(viewer_client, make_mailing, action):
    mailing = make_mailing(state=MailingState.PAUSED)
    assert viewer_client.post(f"/mailings/{mailing.pk}/{action}/").status_code == 403
    assert viewer_client.post(f"/mailings/{mailing.pk}/{action}/", **HTMX).status_code == 403
    mailing.refresh_from_db()
    assert mailing.state == MailingState.PAUSED


def test_controls_need_post(manager_client, make_mailing):
    mailing = make_mailing(state=MailingState.RUNNING)
    assert manager_client.get(f"/mailings/{mailing.pk}/pause/").status_code == 405
    mailing.refresh_from_db()
    assert mailing.state == MailingState.RUNNING


def test_controls_need_csrf_token(manager, make_mailing):
    mailing = make_mailing(state=MailingState.RUNNING)
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(manager)
    assert browser.post(f"/mailings/{mailing.pk}/pause/").status_code == 403
    mailing.refresh_from_db()
    assert mailing.state == MailingState.RUNNING
    # The page carries the token for htmx in hx-headers on <body>.
    html = browser.get(f"/mailings/{mailing.pk}/").content.decode()
    assert 'hx-headers=\'{"x-csrftoken": "' in html
    token = html.split('"x-csrftoken": "')[1].split('"')[0]
    assert browser.post(f"/mailings/{mailing.pk}/pause/", HTTP_X_CSRFTOKEN=token, **HTMX).status_code == 200
    mailing.refresh_from_db()
    assert mailing.state == MailingState.PAUSED


def test_delete_mailing(manager_client, make_mailing, make_client):
    mailing = make_mailing(state=MailingState.PAUSED)
    Message.objects.create(mailing=mailing, client=make_client())
    response = manager_client.post(f"/mailings/{mailing.pk}/delete/", **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/mailings/"
    assert not Mailing.objects.exists() and not Message.objects.exists()


def test_running_mailing_is_not_deleted(manager_client, make_mailing):
    mailing = make_mailing(state=MailingState.RUNNING)
    response = manager_client.post(f"/mailings/{mailing.pk}/delete/", follow=True)
    assert Mailing.objects.filter(pk=mailing.pk).exists()
    assert any("pause or cancel it" in m for m in _messages(response))


def test_duplicate_prefills_the_form_without_saving(manager_client, make_mailing):
    source = make_mailing(text="Repeat me", filter_tags=["vip"], filter_operator_codes=["916"])
    response = manager_client.get(f"/mailings/new/?from={source.pk}")
    assert response.status_code == 200
    form = response.context["form"]
    assert form.initial["text"] == "Repeat me"
    assert form.initial["filter_tags"] == ["vip"] and form.initial["filter_operator_codes"] == ["916"]
    assert form.initial["end_at"] - form.initial["start_at"] == source.end_at - source.start_at
    html = response.content.decode()
    assert re.search(r'value="vip"[^>]*checked', html) and re.search(r'value="916"[^>]*checked', html)
    assert Mailing.objects.count() == 1


def test_client_create_edit_delete(manager_client):
    response = manager_client.post(
        "/clients/new/", {"phone": "79161234567", "tag": "vip", "timezone": "Europe/Moscow"}, follow=True
    )
    client = Client.objects.get()
    assert client.operator_code == "916"
    assert any("added" in m for m in _messages(response))
    manager_client.post(
        f"/clients/{client.pk}/", {"phone": "79161234567", "tag": "retail", "timezone": "UTC"}
    )
    client.refresh_from_db()
    assert client.tag == "retail" and client.timezone == "UTC"
    response = manager_client.post(f"/clients/{client.pk}/delete/", follow=True)
    assert not Client.objects.exists()
    assert any("deleted" in m for m in _messages(response))


def test_client_form_shows_model_errors(manager_client):
    response = manager_client.post(
        "/clients/new/", {"phone": "78001234567", "tag": "", "timezone": "Mars/Base"}
    )
    html = response.content.decode()
    assert "Operator code 800" in html
    assert "is not a known IANA time zone" in html
    assert not Client.objects.exists()


def test_viewer_cannot_change_clients(viewer_client, make_client):
    client = make_client(tag="vip")
    assert viewer_client.get(f"/clients/{client.pk}/").status_code == 200
    assert "Delete client" not in viewer_client.get(f"/clients/{client.pk}/").content.decode()
    assert (
        viewer_client.post(
            f"/clients/{client.pk}/", {"phone": client.phone, "tag": "x", "timezone": "UTC"}
        ).status_code
        == 403
    )
    assert viewer_client.post(f"/clients/{client.pk}/delete/").status_code == 403
    assert viewer_client.post("/clients/new/", {"phone": "79161234567", "timezone": "UTC"}).status_code == 403
    client.refresh_from_db()
    assert client.tag == "vip" and Client.objects.count() == 1


def test_client_list_filters(viewer_client, make_client):
    make_client(phone="79161234567", tag="vip", timezone="Europe/Moscow")
    make_client(phone="79001234567", tag="retail", timezone="UTC")
    html = viewer_client.get("/clients/?tag=vip").content.decode()
    assert "79161234567" in html and "79001234567" not in html
    html = viewer_client.get("/clients/?operator_code=900", **HTMX).content.decode()
    assert "79001234567" in html and "79161234567" not in html
    html = viewer_client.get("/clients/?timezone=Europe/Moscow").content.decode()
    assert "79161234567" in html and "79001234567" not in html
    html = viewer_client.get("/clients/?phone=7916").content.decode()
    assert "79161234567" in html and "79001234567" not in html
    html = viewer_client.get("/clients/?phone=1234567").content.decode()
    assert "79161234567" in html and "79001234567" in html


def test_client_filter_lists_offer_each_value_once_in_order(manager_client, make_client):
    # Read with a loose index scan (filters.distinct_values), not a DISTINCT over every client.
    rows = [
        ("79161234567", "vip", "Europe/Moscow"),
        ("79161234568", "vip", "Asia/Omsk"),
        ("79001234567", "опт", "UTC"),
        ("79251234567", "", "Europe/Moscow"),
        ("79991234567", "b2b", "Asia/Omsk"),
    ]
    for phone, tag, zone in rows:
        make_client(phone=phone, tag=tag, timezone=zone)
    filters = manager_client.get("/clients/").context["filter"].filters
    assert [v for v, _ in filters["tag"].extra["choices"]] == sorted({"vip", "опт", "b2b"})
    assert [v for v, _ in filters["operator_code"].extra["choices"]] == ["900", "916", "925", "999"]
    assert [v for v, _ in filters["timezone"].extra["choices"]] == ["Asia/Omsk", "Europe/Moscow", "UTC"]
    form = manager_client.get("/mailings/new/").context["form"]
    assert [v for v, _ in form.fields["filter_tags"].choices] == sorted({"vip", "опт", "b2b"})
