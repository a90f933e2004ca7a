"""Password guessing is stopped (django-axes): per username and address, per address over many
usernames, logged, unlockable."""

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


def alice_signs_in(client, path: str = LOGIN, ip: str = "203.0.113.7"):
    return client.post(path, {"username": "alice", "password": "pw"}, REMOTE_ADDR=ip)


def test_the_right_password_after_too_many_wrong_ones_is_refused(client, alice, settings):
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT)

    response = client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 429
    assert "this account is locked for 15 minutes from this address" in response.content.decode()
    assert not signed_in(client)


def test_one_failure_less_still_signs_in(client, alice, settings):
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT - 1)

    response = client.post(LOGIN, {"username": "alice", "password": "pw"}, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 302 and signed_in(client)


def test_the_same_username_from_another_address_is_not_locked(client, alice, settings):
    guess(client, LOGIN, "alice", settings.AXES_FAILURE_LIMIT, ip="203.0.113.7")

    response = alice_signs_in(client, ip="198.51.100.1")

    assert response.status_code == 302 and signed_in(client)


@pytest.mark.parametrize("path", [LOGIN, "/admin/login/"])
def test_a_colleague_locked_out_does_not_lock_out_the_office(client, alice, settings, path):
    """Behind one NAT address: bob forgot his password and keeps trying; alice still signs in."""
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 2 * settings.AXES_FAILURE_LIMIT
    guess(client, path, "bob", 3 * settings.AXES_FAILURE_LIMIT)

    response = alice_signs_in(client, path)

    assert response.status_code == 302 and signed_in(client)


def spray(client, path: str, count: int, ip: str = "203.0.113.7", **headers) -> None:
    """One wrong password for each of `count` usernames, as a password sprayer tries them."""
    for n in range(count):
        response = client.post(path, {"username": f"user{n}", "password": "x"}, REMOTE_ADDR=ip, **headers)
        assert response.status_code in (200, 429)


@pytest.mark.parametrize("path", [LOGIN, "/admin/login/"])
def test_spraying_many_usernames_from_one_address_locks_the_address(client, alice, settings, path):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 30
    spray(client, path, 29)
    # One short of the address limit, and each username far from its own: not locked yet.
    assert alice_signs_in(client, path).status_code == 302
    client.logout()

    reaching = client.post(path, {"username": "user99", "password": "x"}, REMOTE_ADDR="203.0.113.7")
    response = alice_signs_in(client, path)

    assert (reaching.status_code, response.status_code) == (429, 429) and not signed_in(client)
    assert "to different accounts from this address" in response.content.decode()
    # Another address is not affected by that one's guesses.
    assert alice_signs_in(client, path, ip="198.51.100.1").status_code == 302 and signed_in(client)


def test_the_address_limit_counts_a_username_only_up_to_its_own_limit(client, alice, settings):
    """Sign-ins refused by the pair lock tested no password: they do not bring the address lock nearer."""
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 30
    guess(client, LOGIN, "carol", 5 * settings.AXES_FAILURE_LIMIT)  # counts 10
    spray(client, LOGIN, 19)  # 29 in all

    assert alice_signs_in(client).status_code == 302


def test_an_address_lock_refuses_single_sign_on_from_it_too(client, auth0, settings):
    """What the address lock costs: everyone there waits, Auth0 users too (the test client's
    address is 127.0.0.1)."""
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 20
    spray(client, LOGIN, 20, ip="127.0.0.1")

    response = auth0.sign_in(client)

    assert response.status_code == 429 and not signed_in(client)


def test_behind_the_proxy_the_forwarded_address_is_counted(client, alice, django_user_model, settings):
    settings.BEHIND_PROXY = True
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 20
    user_with_role(django_user_model, ADMIN, "bob")
    spray(client, LOGIN, 20, ip="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.9")

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
    # The admin role only looks there (tests/accounts/test_admin_doors.py); it unlocks on the Users page.
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
