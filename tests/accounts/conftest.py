"""A mocked Auth0 tenant: token endpoint and JWKS answered by `responses`, id_tokens signed by a test key."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from social_core.backends.auth0 import Auth0OAuth2

from tests.conftest import enable_auth0

DOMAIN = "tenant.eu.auth0.example"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
KID = "test-key-1"


@pytest.fixture
def admin(client, django_user_model):
    """A user with the admin role (staff, not superuser), signed in."""
    from accounts.roles import ADMIN
    from tests.conftest import user_with_role

    user = user_with_role(django_user_model, ADMIN, "boss")
    client.force_login(user)
    return user


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def auth0(settings, rsa_key):
    """Auth0 configured as through AUTH0_* env vars, allowing example.com and one outside address."""
    enable_auth0(settings, DOMAIN, CLIENT_ID, CLIENT_SECRET)
    settings.AUTH0_ALLOWED_DOMAINS = ["example.com"]
    settings.AUTH0_ALLOWED_EMAILS = ["guest@partner.org"]
    # social-core keeps JWKS keys per class for a day; each test starts from a cold cache.
    Auth0OAuth2.get_jwks_keys_for_uri.invalidate()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield Tenant(mock, rsa_key)
    Auth0OAuth2.get_jwks_keys_for_uri.invalidate()


class Tenant:
    def __init__(self, mock: responses.RequestsMock, key: rsa.RSAPrivateKey) -> None:
        self.mock = mock
        self.key = key
        public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        public_jwk.update(kid=KID, alg="RS256", use="sig")
        mock.get(f"https://{DOMAIN}/.well-known/jwks.json", json={"keys": [public_jwk]})

    def id_token(self, **claims) -> str:
        now = int(time.time())
        payload = {
            "sub": "auth0|alice",
            "email": "alice@example.com",
            "email_verified": True,
            "name": "Alice Liddell",
            "nickname": "alice",
            "iss": f"https://{DOMAIN}/",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 600,
        }
        payload.update(claims)
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": KID})

    def sign_in(self, client, state: str | None = None, **claims):
        """Start at our login button, let 'Auth0' answer, and return our callback's response."""
        start = client.post("/sso/login/auth0/")
        assert start.status_code == 302, start
        authorize = urlsplit(start["Location"])
        assert (authorize.scheme, authorize.netloc, authorize.path) == ("https", DOMAIN, "/authorize")
        query = parse_qs(authorize.query)
        assert query["client_id"] == [CLIENT_ID]
        assert query["scope"] == ["openid profile email"]
        assert query["redirect_uri"][0].startswith("http://testserver/sso/complete/auth0/")
        self.mock.post(
            f"https://{DOMAIN}/oauth/token",
            json={"access_token": "at", "token_type": "Bearer", "id_token": self.id_token(**claims)},
        )
        return client.get("/sso/complete/auth0/", {"code": "the-code", "state": state or query["state"][0]})
