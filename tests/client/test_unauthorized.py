"""401s through the whole client stack, and refreshes after a wait for rate budget (never holding a slot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.errors import ExactRequestError
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient
from syncs.exact.transport import DIVISION_KEY, BudgetedTransport
from syncs.limits.ratelimit import RateGate, Slot
from syncs.sandbox import SandboxServer
from syncs.tokens.store import TokenRefresher
from tests.client.conftest import store_pair
from tests.support.clock import FakeClock
from tests.support.tokens import token_store

DIV = 124132


def test_unauthorized_young_unknown_token_fails_without_a_token_request(
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    client_settings: Settings,
    connection_id: int,
    open_exact: Callable[[Settings], ExactClient],
    clock: FakeClock,
) -> None:
    issued = sandbox.state.issue_tokens()
    clock.advance(572)  # Exact would even accept a refresh now; our clock says the token is young
    store_pair(db, client_settings, connection_id, {**issued, "access_token": "unknown"}, clock.now())
    sandbox.state.reset_counters()
    with open_exact(client_settings) as exact, pytest.raises(ExactRequestError, match="not refreshing early") as raised:
        exact.current_me()
    assert raised.value.status_code == 401
    assert issued["refresh_token"] not in str(raised.value)
    counters = sandbox.state.counters
    assert (counters.http_401, counters.token_requests) == (1, 0)
    assert token_store(db, client_settings).load(connection_id).refresh_token == issued["refresh_token"]


def test_unauthorized_expired_token_refreshes_once_and_retries_once(
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    client_settings: Settings,
    connection_id: int,
    open_exact: Callable[[Settings], ExactClient],
    clock: FakeClock,
) -> None:
    issued = sandbox.state.issue_tokens()
    clock.advance(601)
    # Our record says the token arrived just now (a clock jump, a wrong received_at): Exact says it expired.
    store_pair(db, client_settings, connection_id, issued, clock.now())
    sandbox.state.reset_counters()
    with open_exact(client_settings) as exact:
        assert exact.current_me()["CurrentDivision"] == DIV
        assert exact.api_calls == 2
    counters = sandbox.state.counters
    assert (counters.http_401, counters.token_requests, counters.tokens_issued) == (1, 1, 1)
    assert counters.token_refresh_refused_early == 0


def test_refresh_after_a_rate_wait_holds_no_slot(
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    client_settings: Settings,
    connection_id: int,
    open_exact: Callable[[Settings], ExactClient],
    clock: FakeClock,
    redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued = sandbox.state.issue_tokens()
    store_pair(db, client_settings, connection_id, issued, clock.now())
    clock.advance(540)  # young now; due for a refresh once the wait below is over
    sandbox.state.reset_counters()
    gate = RateGate(redis_client, client_settings.redis_key_prefix, clock)
    gate.observe("current", 429, {})  # every worker waits for the next whole minute
    slots_held: list[int] = []
    refresh_locked = TokenRefresher._refresh_locked

    def spy(self: TokenRefresher, *args: Any, **kwargs: Any) -> str:
        slots_held.append(redis_client.zcard(gate.slots_key("current")))
        return refresh_locked(self, *args, **kwargs)

    monkeypatch.setattr(TokenRefresher, "_refresh_locked", spy)
    with open_exact(client_settings) as exact:
        assert exact.current_me()["CurrentDivision"] == DIV
    assert slots_held == [0]  # the refresh ran without an in-flight slot
    counters = sandbox.state.counters
    assert (counters.http_401, counters.token_requests) == (0, 1)
    assert redis_client.zcard(gate.slots_key("current")) == 0


class FakeGate:
    """Records acquire/release; the first `waits` acquisitions report a wait."""

    def __init__(self, waits: int) -> None:
        self.waits = waits
        self.events: list[str] = []
        self.held = 0

    def acquire(self, division: str) -> Slot:
        self.held += 1
        waited = 5.0 if self.waits > 0 else 0.0
        self.waits -= 1
        self.events.append(f"acquire waited={waited > 0}")
        return Slot(f"slot{len(self.events)}", waited)

    def release(self, division: str, slot: Slot) -> None:
        self.held -= 1
        self.events.append("release")

    def observe(self, division: str, status_code: int, headers: Any) -> None:
        pass


@pytest.mark.parametrize(("waits", "due"), [(1, True), (2, True), (1, False), (0, True)])
def test_transport_refreshes_only_without_a_slot(waits: int, due: bool) -> None:
    gate = FakeGate(waits)

    def reauthorize(request: httpx.Request, *, refresh: bool = True) -> bool:
        gate.events.append(f"reauthorize refresh={refresh} held={gate.held}")
        if refresh:
            request.headers["Authorization"] = "Bearer new"
            return True
        return not due

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"])
        return httpx.Response(200, json={})

    transport = BudgetedTransport(httpx.MockTransport(handler), gate, None, reauthorize)  # type: ignore[arg-type]
    request = httpx.Request("GET", "https://exact.test/api/v1/current/Me", headers={"Authorization": "Bearer old"})
    request.extensions[DIVISION_KEY] = "current"
    transport.handle_request(request)
    assert gate.held == 0
    # A refresh (refresh=True) only ever runs while no slot is held, and at most once.
    refreshes = [event for event in gate.events if "refresh=True" in event]
    assert all(event.endswith("held=0") for event in refreshes)
    if waits == 0:
        assert gate.events == ["acquire waited=False", "release"]
    elif not due:
        assert gate.events == ["acquire waited=True", "reauthorize refresh=False held=1", "release"]
    else:
        expected = [
            "acquire waited=True",
            "reauthorize refresh=False held=1",
            "release",
            "reauthorize refresh=True held=0",
            f"acquire waited={waits > 1}",
            *(["reauthorize refresh=False held=1"] if waits > 1 else []),
            "release",
        ]
        assert gate.events == expected
        assert sent == ["Bearer new"]
