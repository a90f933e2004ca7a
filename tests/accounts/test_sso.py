from __future__ import annotations

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from social_django.models import UserSocialAuth

from accounts.roles import ADMIN, VIEWER, role_of, set_role

pytestmark = pytest.mark.django_db


def nobody_created():
    return not User.objects.exists() and not UserSocialAuth.objects.exists()


def test_allowed_domain_signs_in_and_becomes_viewer(client, auth0):
    response = auth0.sign_in(client)

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get()
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "alice",
        "alice@example.com",
        "Alice",
        "Liddell",
    )
    assert role_of(user) == VIEWER
    assert not user.is_staff
    assert UserSocialAuth.objects.get().uid == "auth0|alice"
    assert int(client.session[SESSION_KEY]) == user.pk
    assert client.get("/").status_code == 200
    token_request = next(
        call.request for call in auth0.mock.calls if call.request.url.endswith("/oauth/token")
    )
    assert "code=the-code" in token_request.body


def test_allowed_single_address_outside_the_domains(client, auth0):
    response = auth0.sign_in(client, sub="auth0|guest", email="guest@partner.org", nickname="guest")

    assert response["Location"] == "/"
    assert User.objects.get().email == "guest@partner.org"


def test_next_page_survives_the_round_trip(client, auth0):
    start = client.post("/sso/login/auth0/", {"next": "/accounts/tokens/"})
    state = start["Location"].split("state=")[1].split("&")[0]
    auth0.mock.post(
        "https://tenant.eu.auth0.example/oauth/token",
        json={"access_token": "at", "token_type": "Bearer", "id_token": auth0.id_token()},
    )
    response = client.get("/sso/complete/auth0/", {"code": "c", "state": state})

    assert response["Location"] == "/accounts/tokens/"


def test_second_sign_in_reuses_the_user(client, auth0, django_user_model):
    auth0.sign_in(client)
    user = User.objects.get()
    set_role(user, ADMIN)  # promoted in between: a new sign-in must not reset the role
    client.logout()

    response = auth0.sign_in(client, name="Alice Pleasance Liddell")

    assert response["Location"] == "/"
    assert User.objects.count() == 1
    assert UserSocialAuth.objects.count() == 1
    user.refresh_from_db()
    assert role_of(user) == ADMIN
    assert user.last_name == "Pleasance Liddell"


def test_an_sso_only_account_with_the_verified_address_is_linked(client, auth0, django_user_model):
    """An account without a password (an admin made it for single sign-on) is the person's."""
    local = django_user_model.objects.create_user("alice.l", "Alice@Example.com")
    set_role(local, ADMIN)

    auth0.sign_in(client)

    assert User.objects.count() == 1
    assert UserSocialAuth.objects.get().user == local
    assert int(client.session[SESSION_KEY]) == local.pk
    local.refresh_from_db()
    assert role_of(local) == ADMIN
    assert local.username == "alice.l"


def test_an_account_linked_before_gets_another_identity_with_its_address(client, auth0, django_user_model):
    """Its owner chose single sign-on already: another Auth0 login with the same verified address
    (another connection of the tenant) signs in to it too."""
    local = django_user_model.objects.create_user("alice.l", "alice@example.com", "pw")
    client.force_login(local)
    auth0.sign_in(client, sub="auth0|alice-before")  # linked on the Profile page
    client.logout()

    auth0.sign_in(client)

    assert int(client.session[SESSION_KEY]) == local.pk
    assert set(UserSocialAuth.objects.values_list("uid", flat=True)) == {"auth0|alice-before", "auth0|alice"}


def refusal(client, response) -> str:
    assert response.status_code == 302
    assert response["Location"] == "/accounts/refused/"
    page = client.get(response["Location"])
    assert page.status_code == 403
    assert SESSION_KEY not in client.session
    return page.content.decode()


def test_a_local_account_with_a_password_is_not_taken_over(client, auth0, django_user_model):
    local = django_user_model.objects.create_user("alice.l", "alice@example.com", "pw")
    set_role(local, ADMIN)

    response = auth0.sign_in(client)

    page = refusal(client, response)
    assert "alice@example.com belongs to an account that signs in with a password" in page
    assert not UserSocialAuth.objects.exists()
    assert User.objects.get() == local


def test_single_sign_on_never_signs_in_to_a_superuser(client, auth0, django_user_model):
    root = django_user_model.objects.create_superuser("root", "alice@example.com", "pw")

    response = auth0.sign_in(client)

    assert "never signs in to a superuser" in refusal(client, response)
    assert not UserSocialAuth.objects.exists()
    assert User.objects.get() == root


def test_a_superuser_without_a_password_is_refused_too(client, auth0, django_user_model):
    django_user_model.objects.create_superuser("root", "alice@example.com", None)

    response = auth0.sign_in(client)

    assert "never signs in to a superuser" in refusal(client, response)


def test_the_owner_links_a_password_account_from_the_profile_page(client, auth0, django_user_model):
    """Signed in with the password, the owner links Auth0 on purpose; from then on either works."""
    local = django_user_model.objects.create_user("alice.l", "alice@example.com", "pw")
    client.force_login(local)
    profile = client.get("/accounts/profile/").content.decode()
    assert 'action="/sso/login/auth0/"' in profile and "Link Auth0" in profile

    response = auth0.sign_in(client)

    assert UserSocialAuth.objects.get().user == local
    assert response["Location"] == "/"
    assert "Your account is linked to Auth0" in client.get("/accounts/profile/").content.decode()
    client.logout()
    auth0.sign_in(client)
    assert int(client.session[SESSION_KEY]) == local.pk


def test_a_superuser_cannot_link_auth0(client, auth0, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    assert "/sso/login/auth0/" not in client.get("/accounts/profile/").content.decode()

    response = auth0.sign_in(client)  # the link started by hand

    assert response["Location"] == "/accounts/refused/"
    assert "never signs in to a superuser" in client.get("/accounts/refused/").content.decode()
    assert not UserSocialAuth.objects.exists()


def test_other_domain_is_refused_and_leaves_nothing(client, auth0):
    response = auth0.sign_in(client, sub="auth0|mallory", email="mallory@evil.test", nickname="mallory")

    assert "mallory@evil.test may not sign in here" in refusal(client, response)
    assert nobody_created()


def test_lookalike_domain_is_refused(client, auth0):
    response = auth0.sign_in(client, email="alice@notexample.com")

    assert "may not sign in here" in refusal(client, response)
    assert nobody_created()


def test_unverified_email_is_refused(client, auth0):
    response = auth0.sign_in(client, email_verified=False)

    assert "is not verified with Auth0" in refusal(client, response)
    assert nobody_created()


def test_missing_email_is_refused(client, auth0):
    response = auth0.sign_in(client, email="")

    assert "did not tell us your email address" in refusal(client, response)
    assert nobody_created()


def test_without_allow_lists_nobody_is_admitted(client, auth0, settings, caplog):
    settings.AUTH0_ALLOWED_DOMAINS = []
    settings.AUTH0_ALLOWED_EMAILS = []

    response = auth0.sign_in(client)

    assert "AUTH0_ALLOWED_DOMAINS or AUTH0_ALLOWED_EMAILS" in refusal(client, response)
    assert "AUTH0_ALLOWED_DOMAINS or AUTH0_ALLOWED_EMAILS" in caplog.text
    assert nobody_created()


def test_state_mismatch_is_refused(client, auth0):
    # social-core 7 keeps one session entry per started sign-in, keyed by its state: an unknown
    # state finds none.
    response = auth0.sign_in(client, state="forged-state")

    assert "The authentication session is unavailable. Please restart login." in refusal(client, response)
    assert nobody_created()


def test_token_signed_by_another_key_is_refused(client, auth0):
    from cryptography.hazmat.primitives.asymmetric import rsa

    auth0.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    response = auth0.sign_in(client)

    assert response["Location"] == "/accounts/refused/"
    assert nobody_created()


@pytest.mark.parametrize(
    "change,why",
    [({"is_active": False}, "deactivated"), ({"is_superuser": True}, "never signs in to a superuser")],
)
def test_a_linked_account_deactivated_or_made_superuser_since_is_refused(client, auth0, change, why):
    auth0.sign_in(client)
    client.logout()
    User.objects.update(**change)

    response = auth0.sign_in(client)

    assert why in refusal(client, response)
    assert User.objects.count() == 1


def test_removed_from_allow_list_is_refused_even_if_linked(client, auth0, settings):
    auth0.sign_in(client)
    client.logout()
    settings.AUTH0_ALLOWED_DOMAINS = ["example.org"]

    response = auth0.sign_in(client)

    assert "may not sign in here" in refusal(client, response)


def test_login_start_needs_post(client, auth0):
    assert client.get("/sso/login/auth0/").status_code == 405


def test_login_start_needs_csrf(auth0):
    from django.test import Client

    assert Client(enforce_csrf_checks=True).post("/sso/login/auth0/").status_code == 403


def test_login_page_offers_auth0_only_when_configured(client, settings, auth0):
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Auth0" in page
    assert 'action="/sso/login/auth0/"' in page

    settings.AUTH0_ENABLED = False
    assert "Sign in with Auth0" not in client.get("/accounts/login/").content.decode()


def test_auth0_failing_shows_the_refusal_page_not_an_error(client, auth0):
    start = client.post("/sso/login/auth0/")
    state = start["Location"].split("state=")[1].split("&")[0]
    auth0.mock.post("https://tenant.eu.auth0.example/oauth/token", status=503, json={"error": "down"})

    response = client.get("/sso/complete/auth0/", {"code": "c", "state": state})

    assert response["Location"] == "/accounts/refused/"
    assert "authentication provider" in client.get("/accounts/refused/").content.decode()
    assert nobody_created()
