"""The stop-list page (search, add, take off with a reason), the client's status and the audience
preview's count of clients left out."""

from __future__ import annotations

import pytest

from mailer.models import OptOutSource, StopEntry
from tests.dashboard.conftest import HTMX

pytestmark = pytest.mark.django_db


def test_add_search_and_take_off(manager_client, manager):
    response = manager_client.post(
        "/stop-list/add/", {"phone": "8 (916) 123-45-67", "reason": "asked by phone"}
    )
    assert response.status_code == 302
    entry = StopEntry.objects.standing().get()
    assert (entry.phone, entry.source, entry.created_by, entry.reason) == (
        "79161234567",
        OptOutSource.UI,
        manager,
        "asked by phone",
    )
    page = manager_client.get("/stop-list/").content.decode()
    assert "79161234567 is on the stop list: it gets no more messages." in page
    assert "asked by phone" in page and "Dashboard" in page
    assert "79161234567" in manager_client.get("/stop-list/?phone=916123").content.decode()
    assert "79161234567" not in manager_client.get("/stop-list/?phone=926").content.decode()

    # Taking off needs a reason; the entry stays, shown under "Taken off".
    manager_client.post(f"/stop-list/{entry.pk}/remove/", {"reason": ""})
    assert StopEntry.objects.standing().exists()
    manager_client.post(f"/stop-list/{entry.pk}/remove/", {"reason": "consented in the shop"})
    assert not StopEntry.objects.standing().exists()
    assert "79161234567" not in manager_client.get("/stop-list/").content.decode().split('id="table"')[1]
    removed = manager_client.get("/stop-list/?state=removed").content.decode()
    assert "consented in the shop" in removed


def test_a_bad_phone_is_a_form_error(manager_client):
    response = manager_client.post("/stop-list/add/", {"phone": "12345", "reason": ""})
    assert response.status_code == 400 and "Phone must be 11 digits" in response.content.decode()
    assert not StopEntry.objects.exists()


def test_viewers_see_the_list_without_changing_it(viewer_client):
    StopEntry.opt_out("79161234567", OptOutSource.API)
    page = viewer_client.get("/stop-list/").content.decode()
    assert "79161234567" in page and 'id="stop-list-add"' not in page and "Take off" not in page
    assert viewer_client.post("/stop-list/add/", {"phone": "79261234567"}).status_code == 403


def test_the_client_page_and_table_say_so(manager_client, make_client):
    client = make_client()
    StopEntry.opt_out(client.phone, OptOutSource.IMPORT)
    page = manager_client.get(f"/clients/{client.pk}/").content.decode()
    assert "On the stop list since" in page and "(CSV import)" in page
    assert (
        '<span class="badge text-bg-secondary">opted out</span>'
        in manager_client.get("/clients/").content.decode()
    )


def test_the_audience_preview_says_how_many_are_left_out(viewer_client, make_client):
    for _ in range(3):
        make_client(tag="vip")
    StopEntry.opt_out(make_client(tag="vip").phone, OptOutSource.UI)
    html = viewer_client.get("/mailings/audience/?filter_tags=vip&text=Hi", **HTMX).content.decode()
    assert '<strong id="audience-count">3</strong>' in html
    assert "1 client on the stop list left out." in html
