"""Two OAuth2 client libraries that nobody here wrote log in with the password
grant (RFC 6749 §4.3), call the protected API with the token they got, and
report a wrong password as their own `invalid_grant` error.

Both authenticate as public clients with HTTP Basic and an empty secret
(`Authorization: Basic <client_id>:`), which is what they send by default.
"""

from __future__ import annotations

import jwt
import pytest
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.integrations.requests_client import OAuthError
from oauthlib.oauth2 import InvalidGrantError, LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from conftest import Server

WRONG_PASSWORD = "not-the-password"


@pytest.fixture(autouse=True)
def plain_http_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses http:// token URLs unless told otherwise; the server
    # under test listens on 127.0.0.1 without TLS.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def unverified_claims(access_token: str) -> dict:
    # Only to read what the server recorded; test_jwt_pyjwt.py verifies tokens.
    return jwt.decode(access_token, options={"verify_signature": False})


# --- requests-oauthlib --------------------------------------------------------


def requests_oauthlib_session() -> OAuth2Session:
    return OAuth2Session(client=LegacyApplicationClient(client_id="e2e-requests-oauthlib"))


def test_requests_oauthlib_fetches_a_token_with_the_password_grant_and_reads_users_me(
    server: Server,
) -> None:
    session = requests_oauthlib_session()

    token = session.fetch_token(
        token_url=server.url("/token"), username=server.username, password=server.password
    )

    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] > 0
    assert set(token["scope"]) == {"me", "items"}
    assert unverified_claims(token["access_token"])["client_id"] == "e2e-requests-oauthlib"
    me = session.get(server.url("/users/me"), timeout=10)
    assert me.status_code == 200, me.text
    assert me.json() == {
        "username": server.username,
        "email": "alice@example.com",
        "full_name": "Alice Wonderson",
        "disabled": False,
    }
    items = session.get(server.url("/users/me/items"), timeout=10)
    assert items.status_code == 200, items.text
    assert items.json() == [{"item_id": "Foo", "owner": server.username}]


def test_requests_oauthlib_raises_invalid_grant_error_for_a_wrong_password(
    server: Server,
) -> None:
    session = requests_oauthlib_session()

    with pytest.raises(InvalidGrantError) as raised:
        session.fetch_token(
            token_url=server.url("/token"), username=server.username, password=WRONG_PASSWORD
        )

    assert raised.value.error == "invalid_grant"
    assert raised.value.description == "incorrect username or password"
    assert raised.value.status_code == 400
    assert not session.authorized


# --- Authlib --------------------------------------------------------------------


def authlib_session() -> AuthlibSession:
    # Authlib's default client authentication is client_secret_basic; with no
    # secret that is `Basic <client_id>:`, the public-client form.
    return AuthlibSession(client_id="e2e-authlib")


def test_authlib_fetches_a_token_with_the_password_grant_and_reads_users_me(
    server: Server,
) -> None:
    with authlib_session() as session:
        token = session.fetch_token(
            server.url("/token"),
            grant_type="password",
            username=server.username,
            password=server.password,
        )

        assert token["token_type"].lower() == "bearer"
        assert token["expires_in"] > 0
        assert token["scope"] == "me items"
        assert unverified_claims(token["access_token"])["client_id"] == "e2e-authlib"
        me = session.get(server.url("/users/me"), timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["username"] == server.username
        items = session.get(server.url("/users/me/items"), timeout=10)
        assert items.status_code == 200, items.text
        assert items.json() == [{"item_id": "Foo", "owner": server.username}]


def test_authlib_raises_oauth_error_invalid_grant_for_a_wrong_password(server: Server) -> None:
    with authlib_session() as session:
        with pytest.raises(OAuthError) as raised:
            session.fetch_token(
                server.url("/token"),
                grant_type="password",
                username=server.username,
                password=WRONG_PASSWORD,
            )

        assert raised.value.error == "invalid_grant"
        assert raised.value.description == "incorrect username or password"
        assert not session.token
