"""Token lifecycle: keep-alive inside the refresh window rules, backoff after failed refreshes, what status says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, ConnectionToken
from syncs.core.crypto import TokenCipher
from syncs.core.errors import ReauthRequiredError, TokenRefreshError
from syncs.core.settings import Settings
from syncs.exact.oauth import OAuthClient
from syncs.lifecycle.connect_flow import ConnectFlow
from syncs.lifecycle.keepalive import KeepAliveReport, keep_alive
from syncs.sandbox.server import SandboxServer
from syncs.tokens.store import TokenRefresher, TokenStore
from tests.lifecycle.conftest import connect_via_flow
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock
from tests.support.net import free_port

DAY = 86400.0


@pytest.fixture
def run_keep_alive(
    life_settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis[Any], clock: FakeClock
) -> Callable[[], KeepAliveReport]:
    return lambda: keep_alive(life_settings, db, redis_client, clock)


def test_keep_alive_refreshes_idle_and_paused_connections_once(
    sandbox: SandboxServer,
    flow: ConnectFlow,
    db: sessionmaker[Session],
    run_keep_alive: Callable[[], KeepAliveReport],
    clock: FakeClock,
) -> None:
    connect_via_flow(flow, "acme")
    connect_via_flow(flow, "held")
    connect_via_flow(flow, "exported")
    with db.begin() as session:  # disabled connections (e.g. exported) are never refreshed; paused ones are
        session.execute(update(Connection).where(Connection.name == "held").values(paused=True))
        session.execute(
            update(Connection).where(Connection.name == "exported").values(status=ConnectionStatus.DISABLED)
        )
    sandbox.state.reset_counters()

    clock.advance(6 * DAY)
    assert run_keep_alive().refreshed == []
    clock.advance(2 * DAY)  # 8 days idle: past TOKEN_KEEPALIVE_DAYS (7), far from the 30-day expiry
    report = run_keep_alive()
    assert sorted(report.refreshed) == ["acme", "held"] and not report.failed
    assert run_keep_alive().refreshed == []
    counters = sandbox.state.counters
    assert (counters.token_requests, counters.token_refresh_refused_early) == (2, 0)


def test_keep_alive_never_refreshes_before_the_window(
    sandbox: SandboxServer,
    flow: ConnectFlow,
    db: sessionmaker[Session],
    run_keep_alive: Callable[[], KeepAliveReport],
    clock: FakeClock,
) -> None:
    connected = connect_via_flow(flow, "acme")
    # An old refresh token next to a fresh access token (e.g. registered with `connections add`).
    with db.begin() as session:
        token = session.get_one(ConnectionToken, connected.connection_id)
        token.refresh_token_issued_at -= timedelta(days=8)
    sandbox.state.reset_counters()

    first = run_keep_alive()
    assert first.not_in_window == ["acme"] and sandbox.state.counters.token_requests == 0
    clock.advance(540)  # the window (600 - 30 s, plus a 2 s margin) opens in 32 s: the keep-alive waits for it
    second = run_keep_alive()
    assert second.refreshed == ["acme"]
    assert clock.slept and 31 <= clock.slept[-1] <= 33
    counters = sandbox.state.counters
    assert (counters.token_requests, counters.token_refresh_refused_early) == (1, 0)


def refresher(settings: Settings, db: sessionmaker[Session], redis_client: Any, clock: FakeClock) -> TokenRefresher:
    key = settings.token_encryption_key
    assert key is not None and settings.exact_client_secret is not None
    oauth = OAuthClient(
        settings.exact_base_url or "",
        settings.exact_client_id or "",
        settings.exact_client_secret.get_secret_value(),
        clock=clock,
        timeout=2,
    )
    return TokenRefresher(TokenStore(db, TokenCipher(key.get_secret_value())), oauth, redis_client, settings, db, clock)


def test_failed_refreshes_back_off_and_a_refused_token_says_reconnect(
    sandbox: SandboxServer,
    flow: ConnectFlow,
    life_settings: Settings,
    db: sessionmaker[Session],
    redis_client: redis.Redis[Any],
    clock: FakeClock,
    cli: CliInvoke,
) -> None:
    connected = connect_via_flow(flow, "acme")
    clock.advance(700)  # the access token expired: the next use refreshes
    unreachable = life_settings.model_copy(update={"exact_base_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(TokenRefreshError, match="unreachable"):
        refresher(unreachable, db, redis_client, clock).valid_access_token(connected.connection_id)
    with db() as session:
        token = session.get_one(ConnectionToken, connected.connection_id)
        assert token.refresh_failures == 1 and token.last_refresh_error
    sandbox.state.reset_counters()
    live = refresher(life_settings, db, redis_client, clock)
    clock.advance(10)
    with pytest.raises(TokenRefreshError, match="backing off"):
        live.valid_access_token(connected.connection_id)
    assert sandbox.state.counters.token_requests == 0

    shown = cli("status", "acme")
    assert "next refresh attempt after" in shown.output and "refresh token age" in shown.output

    # The lost response may have rotated the token at Exact: after the backoff the stored one is refused.
    sandbox.state.revoke_refresh_tokens()
    clock.advance(30)
    with pytest.raises(ReauthRequiredError):
        live.valid_access_token(connected.connection_id)
    assert sandbox.state.counters.token_requests == 1
    with db() as session:
        acme = session.get_one(Connection, connected.connection_id)
        assert acme.status == ConnectionStatus.REAUTH_REQUIRED
        assert "Exact may have rotated the token" in (acme.status_reason or "")
        assert "Run `exact-sync connect acme` again" in (acme.status_reason or "")
    shown = cli("status")
    assert "reauth_required" in shown.output and "may have rotated" in shown.output
