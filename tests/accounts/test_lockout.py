"""Password guessing is stopped (django-axes): per username, per address, logged, unlockable."""

from __future__ import annotations

import logging

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command
from django.test import RequestFactory

from accounts.lockout import client_ip
from accounts.models import ApiToken
from accounts.roles import ADMIN
from tests.conftest import user_with_role

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture
def alice(django_user_model):
    return user_with_role(django_user_model, ADMIN, "alice")  # password "pw"


def guess(client, path: str, username: str, times: int, ip: str = "203.0.113.7") -> None:
    for _ in range(times):
        response = client.post(path, {"username": username, "password": "wrong"}, REMOTE_ADDR=ip)
        assert response.status_code in (200, 429)


def signed_in(client) -> bool:
    return SESSION_KEY in client.session


def test_the_right_password_after_too_many_wrong_ones_is_refused(client, alice, settings):
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT)

    response = client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "locked for 15 minutes" in response.content.decode()
    assert not signed_in(client)


def test_one_failure_less_still_signs_in(client, alice, settings):
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT - 1)

    response = client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 302 and signed_in(client)


def test_a_username_is_locked_from_every_address(client, alice, settings):
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT, ip="203.0.113.7")

    response = client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="198.51.100.1")

    assert response.status_code == 429 and not signed_in(client)


def test_an_address_trying_many_usernames_is_locked(client, alice, django_user_model, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        guess(client, LOGIN, f"user{n}", 1, ip="203.0.113.7")

    assert (
        client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7").status_code
        == 429
    )
    # Another address is not affected by that one's guesses.
    assert (
        client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="198.51.100.1").status_code
        == 302
    )


def test_behind_the_proxy_the_forwarded_address_is_counted(client, alice, django_user_model, settings):
    settings.BEHIND_PROXY = True
    user_with_role(django_user_model, ADMIN, "bob")
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            LOGIN,
            {"username": f"user{n}", "password": "x"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR="192.0.2.9",
        )

    # Through the same proxy: the guesser's address is locked, another client's is not.
    locked = client.post(
        LOGIN, {"username": "bob", "password": "pw"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.9"
    )
    other = client.post(
        LOGIN,
        {"username": "bob", "password": "pw"},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.4",
    )

    assert (locked.status_code, other.status_code) == (429, 302)


@pytest.mark.parametrize("path", [LOGIN, "/admin/login/"])
@pytest.mark.parametrize("username", ["x" * 100_000, "é" * 300, "a\x00b", ""])
def test_hostile_usernames_are_refused_not_a_500(client, alice, settings, path, username):
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        response = client.post(
            path, {"username": username, "password": "p" * 5000}, REMOTE_ADDR="203.0.113.7"
        )
        assert response.status_code in (200, 429)
    # A long one is counted under its first 150 characters, and locks like any other.
    if len(username) > 150:
        assert response.status_code == 429
        assert AccessAttempt.objects.get().username == username[:150]


def test_the_django_admin_login_counts_and_locks_too(client, alice, settings):
    guess(client, "/admin/login/", "alice", settings.AXES_FAILURE_LIMIT)

    response = client.post(
        "/admin/login/", {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7"
    )

    assert response.status_code == 429 and not signed_in(client)
    # One counter for both doors.
    assert (
        client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7").status_code
        == 429
    )


def test_failures_are_logged_with_username_and_address_never_the_password(client, alice, caplog, settings):
    with caplog.at_level(logging.INFO):
        client.post(LOGIN, {"username": "alice", "password": "s3cret-guess"}, REMOTE_ADDR="203.0.113.7")
        guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT)
        client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7")

    text = "\n".join(record.getMessage() for record in caplog.records)
    failures = [r.getMessage() for r in caplog.records if "login failure by" in r.getMessage()]
    # The first guess, the ten after it, and the right password refused while locked.
    assert len(failures) == 1 + settings.AXES_FAILURE_LIMIT + 1
    assert all("alice" in line and "203.0.113.7" in line for line in failures)
    assert "s3cret-guess" not in text and "wrong" not in text
    assert "locked out username='alice' ip=203.0.113.7" in text


def test_api_tokens_work_while_the_username_is_locked(client, alice, settings):
    _, raw = ApiToken.issue(alice, "ci")
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT)

    response = client.get("/api/v1/mailings/", HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 200


def test_a_superuser_unlocks_in_the_django_admin(client, alice, django_user_model, settings):
    # The admin role only looks there (tests/mailer/test_admin_doors.py); it unlocks on the Users page.
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT)
    helper = django_user_model.objects.create_superuser("helper", "helper@example.com", "pw")
    client.force_login(helper)

    attempts = list(AccessAttempt.objects.values_list("pk", flat=True))
    assert client.get("/admin/axes/accessattempt/").status_code == 200
    response = client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )
    assert response.status_code == 302
    client.logout()

    assert (
        client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7").status_code
        == 302
    )


def test_the_unlock_command(client, alice, settings):
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT)

    call_command("axes_reset_username", "alice", verbosity=0)

    assert (
        client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="198.51.100.1").status_code
        == 302
    )


@pytest.mark.parametrize(
    ("behind_proxy", "forwarded", "expected"),
    [
        (False, "192.0.2.1", "10.0.0.2"),  # without a proxy the header is the client's word
        (True, "192.0.2.1", "192.0.2.1"),
        (True, "6.6.6.6, 192.0.2.1", "192.0.2.1"),  # only what our proxy appended
        (True, "not-an-address", "10.0.0.2"),
        (True, "", "10.0.0.2"),
    ],
)
def test_client_address(settings, behind_proxy, forwarded, expected):
    settings.BEHIND_PROXY = behind_proxy
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected
