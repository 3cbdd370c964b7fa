"""Exact's error limit: more than N 400/401/403/404 per division and endpoint within an hour -> blocked."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from syncs.sandbox.server import SandboxServer
from tests.sandbox.conftest import FIRST, SECOND, sync_params
from tests.support.clock import FakeClock

THIRD = 124134


def client_for(sandbox: SandboxServer) -> httpx.Client:
    token = sandbox.state.issue_tokens()["access_token"]
    return httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"})


def bad_filter(client: httpx.Client, division: int = FIRST) -> httpx.Response:
    """A 400: the sync endpoint needs a Timestamp filter."""
    return client.get(f"/api/v1/{division}/sync/CRM/Accounts", params={"$select": "ID"})


def good(client: httpx.Client, division: int = FIRST, entity: str = "CRM/Accounts") -> httpx.Response:
    return client.get(f"/api/v1/{division}/sync/{entity}", params=sync_params(select="ID"))


def test_eleventh_error_blocks_the_endpoint_for_an_hour(
    make_sandbox: Callable[..., SandboxServer], clock: FakeClock
) -> None:
    sandbox = make_sandbox()
    client = client_for(sandbox)
    assert [bad_filter(client).status_code for _ in range(10)] == [400] * 10
    assert good(client).status_code == 200  # ten errors are allowed
    assert bad_filter(client).status_code == 400  # the eleventh goes over the limit
    blocked = good(client)
    assert blocked.status_code == 403
    assert "blocked" in blocked.json()["error"]["message"]["value"]
    # Per endpoint and per division: other endpoints and divisions still answer.
    assert good(client, entity="SalesInvoice/SalesInvoices").status_code == 200
    assert good(client, SECOND).status_code == 200
    counters = sandbox.state.counters
    assert counters.http_4xx == {FIRST: 11}
    assert counters.error_limit_blocks == {FIRST: 1} and counters.error_limit_blocked == {FIRST: 1}
    until = counters.error_limit_blocked_until[FIRST]["sync/crm/accounts"]
    assert until == clock.now() + 3600
    clock.advance(3599)
    client = client_for(sandbox)  # the first token has expired by now
    assert good(client).status_code == 403
    clock.advance(1)
    assert good(client).status_code == 200
    assert bad_filter(client).status_code == 400  # the count started afresh


def test_errors_older_than_an_hour_do_not_count(make_sandbox: Callable[..., SandboxServer], clock: FakeClock) -> None:
    sandbox = make_sandbox(error_limit_per_hour=3)
    client = client_for(sandbox)
    for _ in range(3):
        assert bad_filter(client).status_code == 400
    clock.advance(3600)
    client = client_for(sandbox)
    for _ in range(3):
        assert bad_filter(client).status_code == 400
    assert good(client).status_code == 200
    assert bad_filter(client).status_code == 400
    assert good(client).status_code == 403


def test_401_403_and_404_count_and_none_disables(make_sandbox: Callable[..., SandboxServer], clock: FakeClock) -> None:
    sandbox = make_sandbox(error_limit_per_hour=2, restricted_divisions=(SECOND,))
    client = client_for(sandbox)
    stranger = httpx.Client(base_url=sandbox.base_url, headers={"Authorization": "Bearer nope"})
    assert good(stranger).status_code == 401
    assert good(client, SECOND).status_code == 403  # other division: its own count
    nope = client.get(f"/api/v1/{FIRST}/sync/CRM/Nope", params=sync_params())
    assert nope.status_code == 404  # another endpoint: its own count
    assert good(client).status_code == 200
    assert bad_filter(client).status_code == 400
    assert good(client).status_code == 200  # 401 + 400: two errors, not more than two
    assert bad_filter(client).status_code == 400
    assert good(client).status_code == 403  # three errors on sync/crm/accounts
    counters = sandbox.state.counters
    assert counters.http_4xx == {FIRST: 4, SECOND: 1}
    assert set(counters.error_limit_blocked_until[FIRST]) == {"sync/crm/accounts"}
    httpx.post(f"{sandbox.base_url}/sandbox/counters/reset")  # also lifts blocks
    httpx.post(f"{sandbox.base_url}/sandbox/config", json={"error_limit_per_hour": None})
    assert [bad_filter(client).status_code for _ in range(30)] == [400] * 30
    assert good(client).status_code == 200


def test_three_divisions_one_restricted(make_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = make_sandbox(extra_divisions=((THIRD, "Third Holding BV"),), restricted_divisions=(SECOND,))
    client = client_for(sandbox)
    listed = client.get(f"/api/v1/{FIRST}/system/Divisions", params={"$select": "Code,Description,Status,Current"})
    assert listed.status_code == 200
    rows = [{k: v for k, v in r.items() if k != "__metadata"} for r in listed.json()["d"]["results"]]
    assert rows == [
        {"Code": FIRST, "Description": "Nango", "Status": 1, "Current": True},
        {"Code": SECOND, "Description": "Sandbox Second BV", "Status": 1, "Current": False},
        {"Code": THIRD, "Description": "Third Holding BV", "Status": 1, "Current": False},
    ]
    accessible = client.get(f"/api/v1/{FIRST}/hrm/Divisions", params={"$select": "Code"}).json()
    assert [r["Code"] for r in accessible["d"]["results"]] == [FIRST, THIRD]
    assert good(client, FIRST).status_code == 200
    assert good(client, THIRD).status_code == 200
    refused = good(client, SECOND)
    assert refused.status_code == 403 and refused.headers["Reason"] == "NoDivisionAccess"
    # The control API adds divisions too; bare codes get a default description.
    config = httpx.post(f"{sandbox.base_url}/sandbox/config", json={"extra_divisions": [124135]}).json()
    assert config["extra_divisions"] == [[124135, "Division 124135"]]
    codes = [d["Code"] for d in httpx.get(f"{sandbox.base_url}/sandbox/divisions").json()]
    assert codes == [FIRST, SECOND, THIRD, 124135]


def test_requests_without_credentials_do_not_count_toward_the_limit(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    """`exact-sync doctor` probes Exact without a token: eleven probes must not block the endpoint for the real
    connection (an anonymous request has no key, user or company to count against)."""
    sandbox = make_sandbox(error_limit_per_hour=2)
    anonymous = httpx.Client(base_url=sandbox.base_url)
    assert [anonymous.get("/api/v1/current/Me").status_code for _ in range(11)] == [401] * 11
    assert client_for(sandbox).get("/api/v1/current/Me").status_code == 200
    assert sandbox.state.counters.error_limit_blocks == {}
