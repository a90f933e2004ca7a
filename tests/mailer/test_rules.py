"""Each rule about data lives on the model; every way in (dashboard, Django admin, API, import)
refuses the same input with the same message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import translation
from rest_framework.test import APIClient

from mailer.importing import import_clients
from mailer.models import (
    Client,
    Mailing,
    StopEntry,
    normalize_phone,
    phone_problem,
    tag_problem,
    timezone_problem,
)

pytestmark = pytest.mark.django_db

BAD_TAGS = ["vip\x07", "line\nbreak", "x" * 200]


def _api(admin_user) -> APIClient:
    api = APIClient()
    api.force_authenticate(admin_user)
    return api


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_a_bad_client_tag_gets_one_message_everywhere(client, admin_user, tag):
    problem = tag_problem(tag)
    assert problem
    client.force_login(admin_user)
    data = {"phone": "79161234567", "tag": tag, "timezone": "UTC"}
    assert client.post("/clients/new/", data).context["form"].errors["tag"] == [problem]
    assert client.post("/admin/mailer/client/add/", data).context["adminform"].form.errors["tag"] == [problem]
    assert _api(admin_user).post("/api/v1/clients/", data, format="json").json()["tag"] == [problem]
    report = import_clients(f'phone,tag\n79161234567,"{tag}"\n', all_or_nothing=True)
    if "\n" in tag:  # a CSV value can't hold a line break: the import says so first
        assert not report.written
    else:
        assert [e.message for e in report.errors] == [problem]
    assert not Client.objects.exists()


TYPED_PHONES = ["+7 916 123-45-67", "8 (916) 123 45 67", "7-916-123-45-67", " 79161234567 "]


@pytest.mark.parametrize("typed", TYPED_PHONES)
def test_a_phone_as_people_write_it_is_taken_everywhere(client, admin_user, typed):
    client.force_login(admin_user)
    api = _api(admin_user)
    doors = [
        lambda: client.post("/clients/new/", {"phone": typed, "tag": "", "timezone": "UTC"}),
        lambda: client.post("/admin/mailer/client/add/", {"phone": typed, "tag": "", "timezone": "UTC"}),
        lambda: api.post("/api/v1/clients/", {"phone": typed}, format="json"),
        lambda: import_clients(f'phone\n"{typed}"\n', all_or_nothing=True),
    ]
    for door in doors:
        door()
        assert list(Client.objects.values_list("phone", flat=True)) == ["79161234567"], door
        Client.objects.all().delete()
    for door in [
        lambda: client.post("/stop-list/add/", {"phone": typed, "reason": "asked"}),
        lambda: api.post("/api/v1/stop-list/", {"phone": typed}, format="json"),
    ]:
        door()
        assert list(StopEntry.objects.values_list("phone", flat=True)) == ["79161234567"], door
        StopEntry.objects.all().delete()


@pytest.mark.parametrize("typed", ["+7 916 abc 45 67", "+8 916 123 45 67", "7916.123.45.67", "89161234567 8"])
def test_a_phone_that_is_not_one_gets_one_message_everywhere(client, admin_user, typed):
    problem = phone_problem(normalize_phone(typed))
    assert problem
    client.force_login(admin_user)
    api = _api(admin_user)
    data = {"phone": typed, "tag": "", "timezone": "UTC"}
    assert client.post("/clients/new/", data).context["form"].errors["phone"] == [problem]
    assert client.post("/admin/mailer/client/add/", data).context["adminform"].form.errors["phone"] == [
        problem
    ]
    assert api.post("/api/v1/clients/", {"phone": typed}, format="json").json()["phone"] == [problem]
    assert [e.message for e in import_clients(f'phone\n"{typed}"\n', all_or_nothing=True).errors] == [problem]
    assert client.post("/stop-list/add/", {"phone": typed}).context["form"].errors["phone"] == [problem]
    assert api.post("/api/v1/stop-list/", {"phone": typed}, format="json").json()["phone"] == [problem]
    assert not Client.objects.exists() and not StopEntry.objects.exists()


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_a_mailing_cannot_select_a_tag_no_client_could_have(client, admin_user, now, tag):
    client.force_login(admin_user)
    form = {
        "text": "Hi",
        "start_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "end_at": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "new_tags": tag,
    }
    response = client.post("/mailings/new/", form)
    assert response.status_code == 200
    assert response.context["form"].errors["new_tags"] == [tag_problem(tag)]

    body = {
        "text": "Hi",
        "start_at": (now + timedelta(hours=1)).isoformat(),
        "end_at": (now + timedelta(hours=2)).isoformat(),
        "filter": {"tags": [tag]},
    }
    assert _api(admin_user).post("/api/v1/mailings/", body, format="json").status_code == 400
    with pytest.raises(Exception, match="tag"):
        Mailing(text="Hi", start_at=now, end_at=now + timedelta(hours=1), filter_tags=[tag]).full_clean()
    assert not Mailing.objects.exists()


def test_one_time_zone_message(client, admin_user):
    client.force_login(admin_user)
    data = {"phone": "79161234567", "tag": "", "timezone": "Mars/Olympus"}
    message = timezone_problem("Mars/Olympus")
    assert client.post("/clients/new/", data).context["form"].errors["timezone"] == [message]
    assert _api(admin_user).post("/api/v1/clients/", data, format="json").json()["timezone"] == [message]
    report = import_clients("phone,timezone\n79161234567,Mars/Olympus\n", all_or_nothing=True)
    assert [e.message for e in report.errors] == [message]


@pytest.mark.parametrize("day", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:00Z", "1999-12-31T23:00:00Z"])
def test_dates_out_of_range_are_refused_everywhere(client, admin_user, now, day):
    in_range = (now + timedelta(hours=1)).isoformat()
    for start, end in ((day, in_range), (in_range, day)):
        body = {"text": "Hi", "start_at": start, "end_at": end}
        response = _api(admin_user).post("/api/v1/mailings/", body, format="json")
        assert response.status_code == 400
        assert "Give a date from 2000 to 2099." in str(response.json())
    client.force_login(admin_user)
    form = {
        "text": "Hi",
        "start_at": day[:16],
        "end_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    assert client.post("/mailings/new/", form).context["form"].errors["start_at"]
    assert not Mailing.objects.exists()


def test_one_message_for_a_file_too_large(client, admin_user, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from mailer.importing import size_problem

    monkeypatch.setattr("mailer.importing.max_bytes", lambda: 10)
    message = size_problem(11)
    assert message and size_problem(10) is None
    csv_file = b"phone\n79161234567\n"
    client.force_login(admin_user)
    page = client.post("/clients/import/", {"file": SimpleUploadedFile("c.csv", csv_file), "import": "1"})
    assert page.context["form"].errors["file"] == [message]
    upload = SimpleUploadedFile("c.csv", csv_file)
    api = _api(admin_user).post("/api/v1/clients/import/", {"file": upload}, format="multipart")
    assert api.json()["errors"][0]["message"] == message


def test_a_phone_already_taken_gets_one_message_everywhere(client, admin_user, make_client):
    make_client("79161234567")
    client.force_login(admin_user)
    data = {"phone": "+7 916 123-45-67", "tag": "", "timezone": "UTC"}
    with translation.override("ru"):
        message = str(Client._meta.get_field("phone").error_messages["unique"])
        assert message == "Клиент с таким телефоном уже есть."
        headers = {"HTTP_ACCEPT_LANGUAGE": "ru"}
        assert client.post("/clients/new/", data, **headers).context["form"].errors["phone"] == [message]
        admin = client.post("/admin/mailer/client/add/", data, **headers)
        assert admin.context["adminform"].form.errors["phone"] == [message]
        api = _api(admin_user).post("/api/v1/clients/", data, format="json", **headers)
        assert api.json()["phone"] == [message]
