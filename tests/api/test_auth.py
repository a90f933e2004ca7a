"""Authentication (bearer tokens, sessions), the schema/docs behind login, roles, the api_token command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.conftest import user_with_role

ENDPOINTS = [
    ("get", "/api/v1/clients/"),
    ("post", "/api/v1/clients/"),
    ("get", "/api/v1/clients/{client}/"),
    ("put", "/api/v1/clients/{client}/"),
    ("patch", "/api/v1/clients/{client}/"),
    ("delete", "/api/v1/clients/{client}/"),
    ("post", "/api/v1/clients/import/"),
    ("get", "/api/v1/mailings/"),
    ("post", "/api/v1/mailings/"),
    ("get", "/api/v1/mailings/{mailing}/"),
    ("put", "/api/v1/mailings/{mailing}/"),
    ("patch", "/api/v1/mailings/{mailing}/"),
    ("delete", "/api/v1/mailings/{mailing}/"),
    ("post", "/api/v1/mailings/{mailing}/pause/"),
    ("post", "/api/v1/mailings/{mailing}/resume/"),
    ("post", "/api/v1/mailings/{mailing}/cancel/"),
    ("get", "/api/v1/mailings/{mailing}/stats/"),
    ("get", "/api/v1/mailings/{mailing}/messages/"),
    ("get", "/api/v1/stats/"),
    ("get", "/api/schema/"),
]
MUTATIONS = [(m, u) for m, u in ENDPOINTS if m != "get"]


@pytest.fixture
def urls(make_client, make_mailing):
    ids = {"client": make_client().id, "mailing": make_mailing().id}
    return lambda url: url.format(**ids)


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_anonymous_gets_401_everywhere(anon, urls, method, url):
    response = getattr(anon, method)(urls(url))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer mlr_not-a-real-token", "Bearer", "Bearer a b", "Bearer \u00e9t\u00e9"],
)
def test_bad_token_gets_401(urls, header):
    client = APIClient()
    response = client.get(urls("/api/v1/clients/"), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


def test_revoked_token_gets_401(api):
    assert api.get("/api/v1/clients/").status_code == 200
    ApiToken.find_usable(api.raw_token).revoke()
    response = api.get("/api/v1/clients/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_token_of_inactive_user_gets_401(api, manager):
    manager.is_active = False
    manager.save()
    assert api.get("/api/v1/clients/").status_code == 401


def test_last_used_is_recorded_at_most_once_a_minute(api):
    token = ApiToken.find_usable(api.raw_token)
    assert token.last_used_at is None
    api.get("/api/v1/clients/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None

    with CaptureQueriesContext(connection) as queries:
        api.get("/api/v1/clients/")
    assert not [q for q in queries if q["sql"].startswith("UPDATE")]
    token.refresh_from_db()
    assert token.last_used_at == first

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    api.get("/api/v1/clients/")
    token.refresh_from_db()
    assert token.last_used_at > first


def test_session_auth_for_a_logged_in_browser(viewer, make_client):
    make_client()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert client.get("/api/v1/clients/").json()["count"] == 1


def test_session_mutation_needs_csrf_token(manager):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(manager)
    response = client.post("/api/v1/clients/", {"phone": "79161234567"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_schema_with_token(api):
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response.json()["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


@pytest.mark.parametrize("url", ["/docs/", "/redoc/"])
def test_docs_pages_need_login(client, viewer, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    client.force_login(viewer)
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    # Served from the sidecar package: no CDN.
    assert "drf_spectacular_sidecar" in html
    assert "cdn.jsdelivr.net" not in html
    assert "fonts.googleapis.com" not in html
    # No inline script (the policy forbids it); e.g. the ReDoc bundle's logo from cdn.redoc.ly is
    # refused by img-src 'self' data:.
    assert "<script>" not in html
    policy = dict(part.strip().split(" ", 1) for part in page["Content-Security-Policy"].split(";"))
    assert (policy["script-src"], policy["img-src"]) == ("'self'", "'self' data:")
    if url == "/docs/":
        # Swagger UI's init script is a file of its own, which points at the schema.
        script = client.get("/docs/?script=")
        assert script["Content-Type"].startswith("application/javascript")
        assert "/api/schema/" in script.content.decode()
    else:
        assert "/api/schema/" in html


# Roles


def test_user_without_role_gets_403_even_for_reads(db, django_user_model, urls):
    user = django_user_model.objects.create_user("nobody", password="pw")
    _, raw = ApiToken.issue(user, "t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    for url in [
        "/api/v1/clients/",
        "/api/v1/mailings/",
        "/api/v1/stats/",
        urls("/api/v1/mailings/{mailing}/messages/"),
    ]:
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize(("method", "url"), [e for e in ENDPOINTS if e[0] == "get"])
def test_viewer_reads(viewer_api, urls, method, url):
    assert viewer_api.get(urls(url)).status_code == 200


@pytest.mark.parametrize(("method", "url"), MUTATIONS)
def test_viewer_cannot_mutate(viewer_api, urls, method, url):
    response = getattr(viewer_api, method)(urls(url), {}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "You do not have permission to perform this action."


@pytest.mark.parametrize(("method", "url"), MUTATIONS)
def test_manager_passes_the_role_check(api, urls, method, url):
    # Accepted, or refused for its content (400, 415: import wants multipart) or the state (409);
    # never for the role (403).
    response = getattr(api, method)(urls(url), {}, format="json")
    assert response.status_code in (200, 201, 204, 400, 409, 415), response.content


def test_admin_role_may_mutate_too(admin_api):
    response = admin_api.post("/api/v1/clients/", {"phone": "79161234567"}, format="json")
    assert response.status_code == 201


# The api_token command


def test_api_token_command_prints_a_working_token(manager):
    out = StringIO()
    call_command("api_token", "manager", "--name", "ci", stdout=out, stderr=StringIO())
    raw = out.getvalue().strip()
    token = ApiToken.find_usable(raw)
    assert token is not None and token.user == manager and token.name == "ci"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/clients/").status_code == 200


def test_api_token_command_refuses_unknown_or_inactive_user(db, django_user_model):
    with pytest.raises(CommandError, match="No user"):
        call_command("api_token", "ghost")
    user = user_with_role(django_user_model, "viewer")
    user.is_active = False
    user.save()
    with pytest.raises(CommandError, match="inactive"):
        call_command("api_token", "viewer")
    assert not ApiToken.objects.exists()


def test_expired_token_gets_401_saying_so(api):
    token = ApiToken.find_usable(api.raw_token)
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()

    response = api.get("/api/v1/clients/")

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert token.expires_at.isoformat() in response.json()["detail"]


def test_token_works_until_it_expires(api):
    token = ApiToken.find_usable(api.raw_token)
    token.expires_at = timezone.now() + timedelta(minutes=5)
    token.save()

    assert api.get("/api/v1/clients/").status_code == 200


def test_api_token_command_sets_an_expiry(manager):
    out = StringIO()
    call_command("api_token", "manager", "--days", "30", stdout=out, stderr=StringIO())

    token = ApiToken.find_usable(out.getvalue().strip())
    assert timedelta(days=29, hours=23) < token.expires_at - timezone.now() <= timedelta(days=30)
    with pytest.raises(CommandError, match="--days"):
        call_command("api_token", "manager", "--days", "0", stdout=StringIO(), stderr=StringIO())


def test_a_call_with_a_token_from_a_signed_in_browser_reads_no_session(api, manager):
    """The API knows the caller by its token: the session cookie beside it (the same browser is
    signed in to the pages) is not read, nor its user (two queries a call)."""
    api.force_login(manager)
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/api/v1/clients/", {"phone": "79161234567"}, format="json").status_code == 201
    read = " ".join(query["sql"] for query in queries.captured_queries)
    assert "django_session" not in read and 'FROM "auth_user"' not in read
