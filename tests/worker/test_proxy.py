"""The proxy against the sandbox: paged GET, a POST, Exact's error body, a refused foreign URL, serve's route."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from typer.testing import Result

from syncs.core.errors import ConfigurationError, ExactRequestError, ForeignHostError
from syncs.core.settings import Settings
from syncs.lifecycle.clients import proxy
from syncs.sandbox.server import SandboxServer
from tests.support.cli import CliInvoke
from tests.worker.conftest import CURRENT
from worker.runs import execute_sync
from worker.web import create_web_app

SYNC_ACCOUNTS = "sync/CRM/Accounts?$filter=Timestamp gt 1L&$select=ID,Name"


def calls(sandbox: SandboxServer) -> int:
    return sum(sandbox.state.counters.api_calls.values())


def test_paged_get_follows_next_only_when_asked(
    sandbox: SandboxServer, sandbox_settings: Settings, add_sandbox_connection: Callable[..., Result]
) -> None:
    add_sandbox_connection("acme", "--division", str(CURRENT))
    sandbox.state.configure(page_size=2)
    expected = {a["ID"] for a in sandbox.state.accounts(CURRENT)}
    assert len(expected) > 4
    one = proxy(sandbox_settings, "acme", "GET", SYNC_ACCOUNTS)
    assert one.status == 200 and len(one.body["d"]["results"]) == 2 and one.body["d"]["__next"]
    before = calls(sandbox)
    every = proxy(sandbox_settings, "acme", "GET", SYNC_ACCOUNTS, all_pages=True)
    assert {row["ID"] for row in every.body["d"]["results"]} == expected
    assert every.pages == calls(sandbox) - before == -(-len(expected) // 2)
    # A d.__next handed back is followed on our host only.
    follow = proxy(sandbox_settings, "acme", "GET", one.body["d"]["__next"], division=CURRENT)
    assert len(follow.body["d"]["results"]) == 2


def test_cli_post_creates_and_exact_error_body_is_the_error(
    cli: CliInvoke, sandbox: SandboxServer, add_sandbox_connection: Callable[..., Result]
) -> None:
    add_sandbox_connection("acme")  # no --division: the current one is asked from current/Me
    created = cli("proxy", "acme", "POST", "crm/Accounts", "--data", '{"Name": "Proxy BV", "City": "Delft"}')
    assert created.exit_code == 0, created.output
    echo = json.loads(created.stdout)["d"]
    assert echo["Name"] is None  # Exact's create echo is mostly null
    stored = [a for a in sandbox.state.accounts(CURRENT) if a["ID"] == echo["ID"]]
    assert stored and stored[0]["Name"] == "Proxy BV"
    got = cli("proxy", "acme", "GET", f"crm/Accounts(guid'{echo['ID']}')")
    assert json.loads(got.stdout)["d"]["City"] == "Delft"
    refused = cli("proxy", "acme", "POST", "crm/Accounts", "--data", '{"City": "Delft"}')
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error"]["message"]["value"] == "Mandatory: Name"
    assert "Exact answered 400" in refused.stderr


@pytest.mark.parametrize(
    "path",
    ["https://evil.example/api/v1/124132/crm/Accounts", "../oauth2/token", "http://127.0.0.1:1/api/v1/current/Me"],
)
def test_foreign_urls_are_refused_before_any_call(
    sandbox: SandboxServer, sandbox_settings: Settings, add_sandbox_connection: Callable[..., Result], path: str
) -> None:
    add_sandbox_connection("acme", "--division", str(CURRENT))
    before = calls(sandbox)
    with pytest.raises(ForeignHostError):
        proxy(sandbox_settings, "acme", "GET", path)
    assert calls(sandbox) == before


def test_python_proxy_raises_exacts_error_body(
    sandbox: SandboxServer, sandbox_settings: Settings, add_sandbox_connection: Callable[..., Result]
) -> None:
    add_sandbox_connection("acme", "--division", str(CURRENT))
    with pytest.raises(ExactRequestError) as refused:
        proxy(sandbox_settings, "acme", "GET", "crm/Accounts(guid'00000000-0000-0000-0000-000000000000')")
    assert refused.value.status_code == 404
    assert json.loads(refused.value.body)["error"]["message"]["value"] == "Object not found"


def test_serve_proxy_needs_the_admin_token(
    sandbox: SandboxServer, sandbox_settings: Settings, add_sandbox_connection: Callable[..., Result]
) -> None:
    add_sandbox_connection("acme", "--division", str(CURRENT))
    settings = sandbox_settings.model_copy(update={"serve_admin_token": SecretStr("admin-secret")})
    client = TestClient(create_web_app(settings))
    url = "/proxy/acme/crm/Accounts"
    before = calls(sandbox)
    assert client.post(url, json={"Name": "Nope"}).status_code == 401
    assert client.post(url, json={"Name": "Nope"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert calls(sandbox) == before and not [a for a in sandbox.state.accounts(CURRENT) if a["Name"] == "Nope"]
    admin = {"Authorization": "Bearer admin-secret", "X-Exact-Division": str(CURRENT)}
    created = client.post(url, json={"Name": "Served BV"}, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()["d"]["ID"]
    assert client.put(f"{url}(guid'{key}')", json={"City": "Gouda"}, headers=admin).status_code == 204
    paged = client.get(
        "/proxy/acme/sync/CRM/Accounts",
        params={"$filter": "Timestamp gt 1L", "$select": "ID,City"},
        headers={**admin, "X-Exact-All-Pages": "true"},
    )
    assert {"ID": key, "City": "Gouda"} in [{k: r[k] for k in ("ID", "City")} for r in paged.json()["d"]["results"]]
    missing = client.get(f"{url}(guid'{'0' * 8}-0000-0000-0000-{'0' * 12}')", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["message"]["value"] == "Object not found"
    foreign = client.get("/proxy/acme/..%2F..%2Foauth2%2Ftoken", headers=admin)
    assert foreign.status_code in (400, 404)
    off = TestClient(create_web_app(sandbox_settings.model_copy(update={"serve_admin_token": None})))
    assert off.get(url, headers=admin).status_code == 404


def test_without_a_division_a_division_the_connection_does_not_sync_is_never_used(
    sandbox: SandboxServer, sandbox_settings: Settings, add_sandbox_connection: Callable[..., Result], cli: CliInvoke
) -> None:
    """The login's current division is the default only while the connection syncs it; else its only synced
    division, and with several the caller must choose (an action or proxy call never lands in an excluded one)."""
    other = next(code for code in sandbox.state.divisions if code != CURRENT)
    sandbox.state.add_division(other + 1, "Third")
    add_sandbox_connection("acme", "--division", str(other))
    execute_sync(sandbox_settings, "acme", entities=["accounts"])  # lists the divisions: only `other` is on
    found = proxy(sandbox_settings, "acme", "GET", SYNC_ACCOUNTS).body
    assert f"/api/v1/{other}/" in found["d"]["results"][0]["__metadata"]["uri"]

    assert cli("connections", "divisions", "acme", "--exclude", str(CURRENT)).exit_code == 0  # two on, not current
    with pytest.raises(ConfigurationError, match=f"does not sync its login's current division {CURRENT}"):
        proxy(sandbox_settings, "acme", "GET", SYNC_ACCOUNTS)
