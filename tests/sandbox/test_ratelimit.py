from __future__ import annotations

from collections.abc import Callable

import httpx

from syncs.sandbox.server import SandboxServer
from tests.sandbox.conftest import FIRST, SECOND, sync_params
from tests.support.clock import FakeClock

MINUTELY = {"x-ratelimit-minutely-limit", "x-ratelimit-minutely-remaining", "x-ratelimit-minutely-reset"}
DAILY = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}


def client_for(sandbox: SandboxServer) -> httpx.Client:
    token = sandbox.state.issue_tokens()["access_token"]
    return httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"})


def rate_headers(response: httpx.Response) -> set[str]:
    return {k for k in response.headers if k.startswith("x-ratelimit")}


def accounts(client: httpx.Client, division: int = FIRST) -> httpx.Response:
    return client.get(f"/api/v1/{division}/sync/CRM/Accounts", params=sync_params())


def test_minutely_limit_gives_429_with_only_minutely_headers(
    make_sandbox: Callable[..., SandboxServer], clock: FakeClock
) -> None:
    sandbox = make_sandbox(minutely_limit=3, daily_limit=100)
    client = client_for(sandbox)
    responses = [accounts(client) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers["X-RateLimit-Minutely-Remaining"] for r in responses] == ["2", "1", "0"]
    assert rate_headers(responses[0]) == MINUTELY | DAILY
    assert responses[0].headers["X-RateLimit-Remaining"] == "99"
    minute_reset = int(responses[0].headers["X-RateLimit-Minutely-Reset"])
    assert minute_reset % 60_000 == 0 and 0 < minute_reset - clock.now() * 1000 <= 60_000
    day_reset = int(responses[0].headers["X-RateLimit-Reset"])
    assert day_reset % 86_400_000 == 0 and day_reset > clock.now() * 1000
    refused = accounts(client)
    assert refused.status_code == 429
    assert rate_headers(refused) == MINUTELY
    assert refused.json()["error"]["message"]["value"]
    assert accounts(client, SECOND).status_code == 200  # budgets are per division
    assert client.get("/api/v1/current/Me").status_code == 429  # Me spends the current division's budget
    clock.advance(minute_reset / 1000 - clock.now())
    assert accounts(client).status_code == 200
    counters = sandbox.state.counters
    assert counters.http_429 == {FIRST: 2}
    assert counters.api_calls == {FIRST: 4, SECOND: 1}


def test_daily_limit_gives_429_with_only_daily_headers(
    make_sandbox: Callable[..., SandboxServer], clock: FakeClock
) -> None:
    sandbox = make_sandbox(minutely_limit=60, daily_limit=2)
    client = client_for(sandbox)
    assert [accounts(client).status_code for _ in range(2)] == [200, 200]
    clock.advance(120)
    client = client_for(sandbox)
    refused = accounts(client)
    assert refused.status_code == 429 and rate_headers(refused) == DAILY
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    clock.advance(86400)
    assert accounts(client_for(sandbox)).status_code == 200


def test_limits_off_never_429_but_headers_still_sent(make_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = make_sandbox(minutely_limit=None, daily_limit=0)
    client = client_for(sandbox)
    responses = [accounts(client) for _ in range(100)]
    assert {r.status_code for r in responses} == {200}
    assert rate_headers(responses[-1]) == MINUTELY | DAILY
    assert int(responses[-1].headers["X-RateLimit-Minutely-Remaining"]) > 1000


def test_injected_faults_answer_500(make_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = make_sandbox(error_rate=1.0)
    client = client_for(sandbox)
    assert accounts(client).status_code == 500
    sandbox.state.configure(error_rate=0.0)
    assert accounts(client).status_code == 200
    assert sandbox.state.counters.faults_injected == 1
