"""What we know about a client: a name and custom fields an admin declares once (ClientField), with
each client's values in Client.attributes; set at every door (form, API, import), declared keys only."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from mailer.importing import run_import
from mailer.models import AuditEntry, Client, ClientField


def test_a_field_is_declared_by_an_admin_only_and_its_key_is_checked(admin_client, manager_client):
    page = admin_client.post("/clients/fields/", {"key": "city", "label": "Город"})
    assert page.status_code == 302
    assert ClientField.declared() == {"city": "Город"}
    entry = AuditEntry.objects.get(object_type="client_field")
    assert (entry.action, entry.changes["key"]) == ("created", [None, "city"])

    assert manager_client.post("/clients/fields/", {"key": "promo", "label": "x"}).status_code == 403
    listed = manager_client.get("/clients/fields/").content.decode()
    assert "<code>{city}</code>" in listed and "Город" in listed

    for key, why in [
        ("City", "Latin lower-case"),
        ("город", "Latin lower-case"),
        ("name", "is taken"),
        ("unsubscribe", "is taken"),
        ("city", "already exists"),
    ]:
        page = admin_client.post("/clients/fields/", {"key": key, "label": "x"}).content.decode()
        assert why in page, key
    assert ClientField.objects.count() == 1

    field = ClientField.objects.get()
    admin_client.post(f"/clients/fields/{field.pk}/", {f"f{field.pk}-label": "Город проживания"})
    assert ClientField.declared() == {"city": "Город проживания"}


def test_the_model_takes_declared_keys_only_and_strings(fields):
    client = Client(phone="79161234567", attributes={"city": "Казань", "colour": "red"})
    with pytest.raises(ValidationError) as e:
        client.full_clean()
    assert (
        "Unknown field 'colour'; the fields are: city, promo_code." in e.value.message_dict["attributes"][0]
    )
    client.attributes = {"city": "Казань\n"}  # a line break inside a value would go into texts
    client.attributes = {"city": "Ка\tзань"}
    with pytest.raises(ValidationError):
        client.full_clean()
    client.attributes = {"city": "  Казань ", "promo_code": ""}
    client.name = "  Анна  "
    client.full_clean()
    client.save()
    client.refresh_from_db()
    assert (client.name, client.name_search, client.attributes) == ("Анна", "анна", {"city": "Казань"})


def test_the_client_form_sets_the_name_and_each_declared_field(manager_client, fields):
    form = manager_client.get("/clients/new/").content.decode()
    assert 'name="field_city"' in form and "Промокод" in form and "{promo_code}" in form
    response = manager_client.post(
        "/clients/new/",
        {
            "phone": "8 916 123-45-67",
            "name": "Анна Петрова",
            "timezone": "Europe/Moscow",
            "field_city": "Казань",
        },
    )
    assert response.status_code == 302
    client = Client.objects.get()
    assert (client.name, client.attributes) == ("Анна Петрова", {"city": "Казань"})

    manager_client.post(
        f"/clients/{client.pk}/",
        {"phone": client.phone, "name": "Анна", "timezone": "Europe/Moscow", "field_promo_code": "A7K2"},
    )
    client.refresh_from_db()
    assert client.attributes == {"promo_code": "A7K2"}  # the city emptied in the form is gone
    edit = AuditEntry.objects.filter(object_type="client", action="edited").get()
    assert edit.changes["name"] == ["Анна Петрова", "Анна"]
    assert edit.changes["attributes"] == [{"city": "Казань"}, {"promo_code": "A7K2"}]


def test_the_client_list_finds_a_name_in_any_case(manager_client, make_client):
    make_client("79161234567", name="Иванов Пётр")
    make_client("79261234567", name="Сидорова Анна")
    page = manager_client.get("/clients/", {"name": "иванов"}).content.decode()
    assert "Иванов Пётр" in page and "Сидорова" not in page
    assert "1 client matches" in page


def test_the_api_reads_and_writes_declared_fields_and_names_an_unknown_key(api, fields):
    assert api.get("/api/v1/client-fields/").json() == [
        {"key": "city", "label": "Город"},
        {"key": "promo_code", "label": "Промокод"},
    ]
    body = {"phone": "79161234567", "name": "Анна", "attributes": {"city": "Казань", "colour": "red"}}
    response = api.post("/api/v1/clients/", body, format="json")
    assert response.status_code == 400
    assert "colour" in response.json()["attributes"]
    response = api.post("/api/v1/clients/", body | {"attributes": {"city": 5}}, format="json")
    assert response.json()["attributes"] == {"city": ["A field's value is a string."]}
    response = api.post("/api/v1/clients/", body | {"attributes": ["city"]}, format="json")
    assert response.status_code == 400

    created = api.post("/api/v1/clients/", body | {"attributes": {"city": "Казань"}}, format="json").json()
    assert (created["name"], created["attributes"]) == ("Анна", {"city": "Казань"})
    url = f"/api/v1/clients/{created['id']}/"
    patched = api.patch(url, {"attributes": {"promo_code": "A7K2"}}, format="json").json()
    assert patched["attributes"] == {"city": "Казань", "promo_code": "A7K2"}  # PATCH changes what it gives
    patched = api.patch(url, {"attributes": {"city": None}}, format="json").json()
    assert patched["attributes"] == {"promo_code": "A7K2"}
    replaced = api.put(url, {"phone": "79161234567", "attributes": {"city": "Омск"}}, format="json").json()
    assert replaced["attributes"] == {"city": "Омск"}
    assert [c["name"] for c in api.get("/api/v1/clients/?name=АН").json()["results"]] == ["Анна"]


def _upload(api, text: str):
    response = api.post(
        "/api/v1/clients/import/",
        {"file": SimpleUploadedFile("clients.csv", text.encode(), content_type="text/csv")},
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    run_import(response.json()["id"])
    return api.get(response["Location"]).json()


def test_the_import_takes_the_name_and_fields_by_key_or_label(api, fields, make_client):
    make_client("79031234567", name="Старое имя", attributes={"city": "Омск", "promo_code": "OLD"})
    report = _upload(
        api,
        "Телефон;Имя;Город;promo_code\n"
        "79161234567;Анна;Казань;A7K2\n"
        "79031234567;;Тверь;\n",  # known: blank cells keep what the client has
    )
    assert (report["created"], report["updated"], report["error_count"]) == (1, 1, 0)
    clients = {c.phone: c for c in Client.objects.all()}
    assert (clients["79161234567"].name, clients["79161234567"].attributes) == (
        "Анна",
        {"city": "Казань", "promo_code": "A7K2"},
    )
    assert (clients["79031234567"].name, clients["79031234567"].attributes) == (
        "Старое имя",
        {"city": "Тверь", "promo_code": "OLD"},
    )
    assert clients["79161234567"].name_search == "анна"

    again = _upload(api, "Телефон;Имя;Город;promo_code\n79161234567;Анна;Казань;A7K2\n")
    assert (again["updated"], again["unchanged"]) == (0, 1)


def test_the_import_names_an_unknown_column_and_a_bad_value(api, fields):
    report = _upload(api, "phone,name,colour\n79161234567,Анна,red\n")
    assert report["state"] == "failed"
    [error] = report["errors"]
    assert "Unknown column 'colour'" in error["message"] and "city, promo_code" in error["message"]

    report = _upload(api, "phone,city\n79161234567," + "к" * 201 + "\n")
    [error] = report["errors"]
    assert (error["row"], error["field"], error["message"]) == (2, "city", "At most 200 characters.")
    assert not Client.objects.exists()


def test_the_demo_has_names_and_fields_for_its_texts(db):
    from django.core.management import call_command

    call_command("seed_demo", clients=60, no_mailings=True, verbosity=0)
    assert ClientField.declared() == {"city": "Город", "promo_code": "Промокод"}
    named = Client.objects.exclude(name="").count()
    assert 45 <= named < 60  # most, not all: {name|клиент} has a use
    assert not Client.objects.filter(attributes={}).exists()
    moscow = Client.objects.filter(timezone="Europe/Moscow")
    assert {client.attributes["city"] for client in moscow} == {"Москва"}
