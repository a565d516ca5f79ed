"""What the Python checks share: the running server that e2e/run.sh started.

Nothing here starts or skips anything: without run.sh's environment every test
fails at once, saying what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import requests


@dataclass(frozen=True)
class Server:
    """A running Gatehouse and the test user run.sh created on it."""

    base_url: str
    username: str
    password: str
    issuer: str
    audience: str

    def url(self, path: str) -> str:
        return self.base_url + path

    def password_login(self, **extra: str) -> requests.Response:
        """A plain form post to /token, as the README's curl does it."""
        form = {"grant_type": "password", "username": self.username, "password": self.password}
        return requests.post(self.url("/token"), data={**form, **extra}, timeout=10)


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through e2e/run.sh", pytrace=False)
    return value


@pytest.fixture(scope="session")
def server() -> Server:
    return Server(
        base_url=_required("GATEHOUSE_URL"),
        username=_required("E2E_USERNAME"),
        password=_required("E2E_PASSWORD"),
        issuer=_required("E2E_ISSUER"),
        audience=_required("E2E_AUDIENCE"),
    )


@pytest.fixture(scope="session")
def secret_key() -> str:
    """The server's HS256 secret, for verifying its tokens independently."""
    return _required("SECRET_KEY_ENV")
