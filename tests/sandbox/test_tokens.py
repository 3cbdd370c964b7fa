from __future__ import annotations

import base64

import httpx

from syncs.sandbox.server import SandboxServer
from tests.support.clock import FakeClock

FORM = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}


def refresh(sandbox: SandboxServer, token: str, **extra: str) -> httpx.Response:
    data = {**FORM, "grant_type": "refresh_token", "refresh_token": token, **extra}
    return httpx.post(f"{sandbox.base_url}/api/oauth2/token", data=data)


def me(sandbox: SandboxServer, access_token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}"}
    return httpx.get(f"{sandbox.base_url}/api/v1/current/Me", headers=headers)


def test_refresh_returns_pair_with_string_expires_in(sandbox: SandboxServer, clock: FakeClock) -> None:
    pair = sandbox.state.issue_tokens()
    assert pair["expires_in"] == "600"
    clock.advance(571)
    response = refresh(sandbox, pair["refresh_token"])
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == "600" and isinstance(body["expires_in"], str)
    assert body["refresh_token"] != pair["refresh_token"]
    assert me(sandbox, body["access_token"]).status_code == 200


def test_early_refresh_is_refused_and_the_refresh_token_stays_usable(sandbox: SandboxServer, clock: FakeClock) -> None:
    pair = sandbox.state.issue_tokens()
    clock.advance(569)
    response = refresh(sandbox, pair["refresh_token"])
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_request", "error_description": "Access token not expired"}
    assert sandbox.state.counters.token_refresh_refused_early == 1
    clock.advance(2)
    assert refresh(sandbox, pair["refresh_token"]).status_code == 200


def test_refresh_tokens_are_single_use(sandbox: SandboxServer, clock: FakeClock) -> None:
    pair = sandbox.state.issue_tokens()
    clock.advance(600)
    assert refresh(sandbox, pair["refresh_token"]).status_code == 200
    again = refresh(sandbox, pair["refresh_token"])
    assert again.status_code == 401
    assert again.json() == {"error": "unauthorized_client", "error_description": "Old refresh token used."}
    assert sandbox.state.counters.old_refresh_token_used == 1


def test_refresh_token_expires_after_its_lifetime(sandbox: SandboxServer, clock: FakeClock) -> None:
    pair = sandbox.state.issue_tokens()
    clock.advance(30 * 86400 + 1)
    response = refresh(sandbox, pair["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"].startswith("The refresh token expired at ")


def test_unknown_and_revoked_refresh_tokens_are_invalid_grant(sandbox: SandboxServer, clock: FakeClock) -> None:
    assert refresh(sandbox, "nope").json()["error"] == "invalid_grant"
    pair = sandbox.state.issue_tokens()
    assert httpx.post(f"{sandbox.base_url}/sandbox/revoke").json() == {"revoked": 1}
    clock.advance(600)
    response = refresh(sandbox, pair["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_client_credentials_by_form_or_basic_header(sandbox: SandboxServer, clock: FakeClock) -> None:
    pair = sandbox.state.issue_tokens()
    clock.advance(600)
    wrong = refresh(sandbox, pair["refresh_token"], client_secret="wrong")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_client"
    basic = base64.b64encode(b"sandbox-client:sandbox-secret").decode()
    response = httpx.post(
        f"{sandbox.base_url}/api/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200
    assert sandbox.state.counters.token_requests == 2


def test_expired_access_token_gets_401_with_www_authenticate(sandbox: SandboxServer, clock: FakeClock) -> None:
    pair = sandbox.state.issue_tokens()
    clock.advance(580)
    fresh = refresh(sandbox, pair["refresh_token"]).json()
    assert me(sandbox, pair["access_token"]).status_code == 200  # old one valid until its own expiry
    clock.advance(20)
    expired = me(sandbox, pair["access_token"])
    assert expired.status_code == 401
    assert "access token expired" in expired.headers["WWW-Authenticate"]
    assert me(sandbox, fresh["access_token"]).status_code == 200
    assert me(sandbox, "unknown").status_code == 401
    assert httpx.get(f"{sandbox.base_url}/api/v1/current/Me").status_code == 401


def test_authorization_code_is_single_use_and_lives_three_minutes(sandbox: SandboxServer, clock: FakeClock) -> None:
    def exchange(code: str) -> httpx.Response:
        data = {**FORM, "grant_type": "authorization_code", "code": code, "redirect_uri": "http://x/cb"}
        return httpx.post(f"{sandbox.base_url}/api/oauth2/token", data=data)

    code = httpx.post(f"{sandbox.base_url}/sandbox/codes", json={"redirect_uri": "http://x/cb"}).json()["code"]
    assert exchange(code).json()["expires_in"] == "600"
    assert exchange(code).json()["error"] == "invalid_grant"
    late = sandbox.state.issue_code()
    clock.advance(181)
    assert exchange(late).status_code == 400
