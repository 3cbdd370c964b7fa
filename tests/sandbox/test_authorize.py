"""GET /api/oauth2/auth: automatic consent, codes that need URL-decoding, single use, three minutes."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx

from syncs.sandbox.server import SandboxServer
from tests.support.clock import FakeClock

CALLBACK = "https://app.example/callback"
FORM = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}


def authorize(sandbox: SandboxServer, **params: str) -> httpx.Response:
    query = {
        "client_id": "sandbox-client",
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "state": "xyz+/1",
        "force_login": "0",
        **params,
    }
    return httpx.get(f"{sandbox.base_url}/api/oauth2/auth", params=query, follow_redirects=False)


def redirected(response: httpx.Response) -> tuple[str, dict[str, str]]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query


def exchange(sandbox: SandboxServer, code: str) -> httpx.Response:
    data = {**FORM, "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    return httpx.post(f"{sandbox.base_url}/api/oauth2/token", data=data)


def test_consent_redirects_with_an_encoded_code_that_is_single_use(sandbox: SandboxServer) -> None:
    response = authorize(sandbox, force_login="1")
    target, query = redirected(response)
    assert target == CALLBACK and query["state"] == "xyz+/1"
    code = query["code"]
    assert {"!", "+", "/"} <= set(code)
    raw = response.headers["location"].split("code=", 1)[1].split("&", 1)[0]
    assert raw != code and "%21" in raw and "%2B" in raw and "%2F" in raw
    assert exchange(sandbox, raw).json()["error"] == "invalid_grant"  # not URL-decoded: refused
    pair = exchange(sandbox, code)
    assert pair.status_code == 200 and pair.json()["expires_in"] == "600"
    me = httpx.get(
        f"{sandbox.base_url}/api/v1/current/Me",
        headers={"Authorization": f"Bearer {pair.json()['access_token']}"},
    )
    assert me.status_code == 200
    again = exchange(sandbox, code)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "The authorization code has already been used.",
    }
    counters = sandbox.state.counters
    assert counters.consents_given == 1 and counters.invalid_grant == 2


def test_codes_expire_after_three_minutes(sandbox: SandboxServer, clock: FakeClock) -> None:
    _, fresh = redirected(authorize(sandbox))
    _, stale = redirected(authorize(sandbox))
    clock.advance(179)
    assert exchange(sandbox, fresh["code"]).status_code == 200
    clock.advance(2)
    late = exchange(sandbox, stale["code"])
    assert late.status_code == 400
    assert late.json() == {
        "error": "invalid_grant",
        "error_description": "The authorization code has expired.",
    }


def test_redirect_uri_with_a_query_keeps_it_and_state_is_optional(sandbox: SandboxServer) -> None:
    response = httpx.get(
        f"{sandbox.base_url}/api/oauth2/auth",
        params={
            "client_id": "sandbox-client",
            "redirect_uri": f"{CALLBACK}?tenant=7",
            "response_type": "code",
        },
    )
    _, query = redirected(response)
    assert query["tenant"] == "7" and "code" in query and "state" not in query


def test_unknown_client_gets_exacts_not_found_page(sandbox: SandboxServer) -> None:
    response = authorize(sandbox, client_id="a1b2-other-region")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "Client with identifier 'a1b2-other-region' not found" in response.text
    assert sandbox.state.counters.authorize_refused == 1
    assert authorize(sandbox, response_type="token").status_code == 400
    assert authorize(sandbox, redirect_uri="").status_code == 400


def test_denied_consent_redirects_with_access_denied(make_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = make_sandbox(deny_consent=True)
    target, query = redirected(authorize(sandbox, state="s1"))
    assert target == CALLBACK
    assert query["error"] == "access_denied" and query["error_description"] and query["state"] == "s1"
    assert "code" not in query
    httpx.post(f"{sandbox.base_url}/sandbox/config", json={"deny_consent": False})
    assert "code" in redirected(authorize(sandbox))[1]
    counters = sandbox.state.counters
    assert (counters.consents_denied, counters.consents_given) == (1, 1)
