"""PyJWT, knowing only the server's secret and its configured issuer and
audience, verifies Gatehouse's access tokens as RFC 9068 describes them, and
refuses one that was changed in a single byte.
"""

from __future__ import annotations

import base64
import json

import jwt
import pytest
import requests

from conftest import Server

REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]


@pytest.fixture(scope="module")
def token_response(server: Server) -> dict:
    response = server.password_login()
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def access_token(token_response: dict) -> str:
    return token_response["access_token"]


def verify(token: str, secret_key: str, server: Server, audience: str | None = None) -> dict:
    return jwt.decode(
        token,
        secret_key,
        algorithms=["HS256"],
        audience=audience or server.audience,
        issuer=server.issuer,
        options={"require": REQUIRED_CLAIMS},
    )


def server_answer(server: Server, token: str) -> requests.Response:
    return requests.get(
        server.url("/users/me"), headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_pyjwt_verifies_the_access_token_with_the_secret_issuer_and_audience(
    server: Server, secret_key: str, access_token: str, token_response: dict
) -> None:
    header = jwt.get_unverified_header(access_token)
    claims = verify(access_token, secret_key, server)

    assert header["typ"] == "at+jwt"
    assert header["alg"] == "HS256"
    assert header["kid"]
    assert claims["sub"] == server.username
    assert claims["iss"] == server.issuer
    assert claims["aud"] == server.audience
    assert claims["exp"] - claims["iat"] == token_response["expires_in"]
    assert claims["scope"] == token_response["scope"]
    assert claims["jti"]
    assert claims["client_id"]


def test_pyjwt_refuses_the_token_for_another_audience(
    server: Server, secret_key: str, access_token: str
) -> None:
    with pytest.raises(jwt.InvalidAudienceError):
        verify(access_token, secret_key, server, audience="some-other-api")


def flip_one_character(segment: str) -> str:
    """The segment with its middle base64url character replaced: one byte of
    the token differs. (Not the last character: its low bits can be padding,
    so changing it may decode to the same bytes.)"""
    i = len(segment) // 2
    replacement = "A" if segment[i] != "A" else "B"
    return segment[:i] + replacement + segment[i + 1 :]


@pytest.mark.parametrize("part", ["header", "payload", "signature"])
def test_a_token_tampered_in_one_byte_fails_pyjwt_and_the_server(
    server: Server, secret_key: str, access_token: str, part: str
) -> None:
    segments = access_token.split(".")
    index = ["header", "payload", "signature"].index(part)
    segments[index] = flip_one_character(segments[index])
    tampered = ".".join(segments)
    assert sum(a != b for a, b in zip(tampered, access_token)) == 1

    with pytest.raises(jwt.InvalidTokenError):
        verify(tampered, secret_key, server)
    refused = server_answer(server, tampered)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"


def test_a_token_whose_subject_was_changed_in_one_byte_has_an_invalid_signature(
    server: Server, secret_key: str, access_token: str
) -> None:
    # Still a well-formed JWT with plausible claims: only the signature can
    # tell it was changed.
    header, payload, signature = access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = claims["sub"][:-1] + chr(ord(claims["sub"][-1]) ^ 1)
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        .rstrip(b"=")
        .decode()
    )
    forged = f"{header}.{forged_payload}.{signature}"

    with pytest.raises(jwt.InvalidSignatureError):
        verify(forged, secret_key, server)
    refused = server_answer(server, forged)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"


def test_the_untampered_token_is_accepted_by_the_server(server: Server, access_token: str) -> None:
    # The control for the tampering tests above: the original passes.
    accepted = server_answer(server, access_token)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["username"] == server.username
