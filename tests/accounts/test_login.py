from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import SESSION_KEY

from tests.accounts.conftest import CLIENT_ID, DOMAIN

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "correct horse")


def test_local_login(client, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "correct horse", "next": "/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert int(client.session[SESSION_KEY]) == alice.pk


def test_wrong_password_shows_an_error(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert 'value="alice"' in response.content.decode()
    assert SESSION_KEY not in client.session


def test_login_page_without_auth0_has_only_the_local_form(client, settings):
    settings.AUTH0_ENABLED = False
    page = client.get("/accounts/login/").content.decode()

    assert "Sign in with Auth0" not in page
    assert 'name="password"' in page


def test_pages_need_a_login(client):
    response = client.get("/accounts/tokens/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/tokens/"


def test_expired_htmx_request_gets_hx_redirect_to_the_page_it_came_from(client):
    response = client.get(
        "/accounts/tokens/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/mailings/?page=2"},
    )

    assert response.status_code == 200
    assert "Location" not in response
    target = urlsplit(response["HX-Redirect"])
    assert target.path == "/accounts/login/"
    assert parse_qs(target.query) == {"next": ["/mailings/?page=2"]}
    assert response.content == b""


def test_htmx_from_a_foreign_page_goes_back_home(client):
    response = client.get(
        "/accounts/tokens/", headers={"HX-Request": "true", "HX-Current-URL": "https://evil.test/x"}
    )

    assert response["HX-Redirect"] == "/accounts/login/?next=/"


@pytest.mark.urls("tests.accounts.urls_exempt")
@pytest.mark.parametrize(
    ("path", "exempt"),
    [
        ("/api/v1/mailings/", True),  # DRF marks its views: the API answers 401 itself
        ("/api/v1/nowhere/", True),  # the API's JSON 404, a DRF view too
        ("/api/schema/", True),
        ("/metrics", True),
        ("/healthz", True),
        ("/readyz", True),
        ("/accounts/login/", True),
        ("/marked/", True),
        ("/api/v1/plain/", False),
        ("/docs/", False),
        ("/", False),
    ],
)
def test_api_docs_and_probes_are_reachable_without_a_session(client, settings, path, exempt):
    settings.MAILER_READY_HEARTBEAT_SECONDS = 0
    response = client.get(path)

    to_login = response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert to_login is not exempt, (path, response.status_code)


def test_logout_of_a_local_session_goes_to_login(client, alice):
    client.force_login(alice)

    response = client.post("/accounts/logout/")

    assert response["Location"] == "/accounts/login/"
    assert SESSION_KEY not in client.session


def test_logout_needs_post(client, alice):
    client.force_login(alice)

    assert client.get("/accounts/logout/").status_code == 405
    assert SESSION_KEY in client.session


def test_logout_after_sso_also_ends_the_auth0_session(client, auth0):
    auth0.sign_in(client)
    assert SESSION_KEY in client.session

    response = client.post("/accounts/logout/")

    target = urlsplit(response["Location"])
    assert (target.scheme, target.netloc, target.path) == ("https", DOMAIN, "/v2/logout")
    assert parse_qs(target.query) == {
        "client_id": [CLIENT_ID],
        "returnTo": ["http://testserver/accounts/login/"],
    }
    assert SESSION_KEY not in client.session


def test_local_login_with_auth0_configured_logs_out_locally(client, auth0, alice):
    client.post("/accounts/login/", {"username": "alice", "password": "correct horse"})

    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"
