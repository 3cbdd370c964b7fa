"""Fault switches (burst 429s, injected 500s) and the per-division counters under GET /sandbox/counters."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from syncs.sandbox.server import SandboxServer
from tests.sandbox.conftest import FIRST, SECOND, sync_params
from tests.support.clock import FakeClock

MINUTELY = {"x-ratelimit-minutely-limit", "x-ratelimit-minutely-remaining", "x-ratelimit-minutely-reset"}


def client_for(sandbox: SandboxServer) -> httpx.Client:
    token = sandbox.state.issue_tokens()["access_token"]
    return httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"})


def accounts(client: httpx.Client, division: int = FIRST) -> httpx.Response:
    return client.get(f"/api/v1/{division}/sync/CRM/Accounts", params=sync_params(select="ID"))


def rate_headers(response: httpx.Response) -> set[str]:
    return {k for k in response.headers if k.startswith("x-ratelimit")}


def test_burst_429_answers_the_next_n_calls_per_division(
    make_sandbox: Callable[..., SandboxServer], clock: FakeClock
) -> None:
    sandbox = make_sandbox(minutely_limit=60)
    client = client_for(sandbox)
    control = httpx.Client(base_url=f"{sandbox.base_url}/sandbox")
    clock.advance(15)  # mid-minute
    assert control.post("/config", json={"burst_429": 2}).json()["burst_429"] == 2
    first = [accounts(client) for _ in range(3)]
    assert [r.status_code for r in first] == [429, 429, 200]
    assert rate_headers(first[0]) == MINUTELY
    reset = int(first[0].headers["X-RateLimit-Minutely-Reset"])
    assert reset % 60_000 == 0 and 0 < reset - clock.now() * 1000 <= 60_000
    assert first[0].headers["X-RateLimit-Minutely-Remaining"] == "0"
    assert [accounts(client, SECOND).status_code for _ in range(3)] == [429, 429, 200]
    control.post("/config", json={"burst_429": 1, "burst_429_headers": False})
    bare = accounts(client)
    assert bare.status_code == 429 and rate_headers(bare) == set()
    assert accounts(client).status_code == 200
    counters = control.get("/counters").json()
    assert counters["burst_429_sent"] == {str(FIRST): 3, str(SECOND): 2}
    assert counters["http_429"] == {} and counters["http_429_per_window"] == {}
    assert counters["api_calls"] == {str(FIRST): 2, str(SECOND): 1}


def test_well_behaved_client_gets_at_most_one_429_per_window(
    make_sandbox: Callable[..., SandboxServer], clock: FakeClock
) -> None:
    """A client that waits for the minutely reset after a 429 shows one 429 per window per division."""
    sandbox = make_sandbox(minutely_limit=5)
    client = client_for(sandbox)
    for division in (FIRST, SECOND):
        done = 0
        while done < 12:
            response = accounts(client, division)
            if response.status_code == 429:
                reset = int(response.headers["X-RateLimit-Minutely-Reset"]) / 1000
                clock.advance(reset - clock.now())
                continue
            done += 1
    per_window = sandbox.state.counters.http_429_per_window
    assert set(per_window) == {FIRST, SECOND}
    assert all(count == 1 for windows in per_window.values() for count in windows.values())
    assert all(start % 60 == 0 for windows in per_window.values() for start in windows)
    assert sandbox.state.counters.http_429 == {FIRST: 2, SECOND: 2}
    # A client that hammers shows up: several 429s in one window.
    for _ in range(7):
        accounts(client)
    windows = sandbox.state.counters.http_429_per_window[FIRST]
    assert max(windows.values()) == 2  # 5 allowed, then 2 refused in the same minute


def test_daily_429s_are_counted_per_utc_day(make_sandbox: Callable[..., SandboxServer], clock: FakeClock) -> None:
    sandbox = make_sandbox(minutely_limit=None, daily_limit=1)
    client = client_for(sandbox)
    assert [accounts(client).status_code for _ in range(3)] == [200, 429, 429]
    day = int(clock.now() // 86400) * 86400
    assert sandbox.state.counters.http_429_per_window == {FIRST: {day: 2}}


def test_injected_500s_are_counted_per_division(make_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = make_sandbox(error_rate=1.0)
    client = client_for(sandbox)
    assert accounts(client).status_code == 500
    assert accounts(client, SECOND).status_code == 500
    assert client.get("/api/v1/current/Me").status_code == 500
    counters = httpx.get(f"{sandbox.base_url}/sandbox/counters").json()
    assert counters["http_5xx"] == {str(FIRST): 2, str(SECOND): 1}
    assert counters["faults_injected"] == 3


def test_counters_endpoint_lists_everything_and_resets(make_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = make_sandbox(burst_429=1)
    client = client_for(sandbox)
    assert accounts(client).status_code == 429
    control = httpx.Client(base_url=f"{sandbox.base_url}/sandbox")
    counters = control.get("/counters").json()
    assert {
        "api_calls",
        "http_429",
        "http_429_per_window",
        "burst_429_sent",
        "http_5xx",
        "http_4xx",
        "error_limit_blocks",
        "error_limit_blocked",
        "error_limit_blocked_until",
        "consents_given",
        "consents_denied",
        "authorize_refused",
        "token_requests",
    } <= set(counters)
    assert counters["burst_429_sent"] == {str(FIRST): 1}
    assert control.post("/counters/reset").status_code == 200
    assert control.get("/counters").json()["burst_429_sent"] == {}
    assert accounts(client).status_code == 200  # the burst was spent before the reset
