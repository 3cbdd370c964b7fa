"""Fixtures for the client stack: a sandbox on a FakeClock, a connection row with stored tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models import Connection
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient, open_client
from syncs.exact.oauth import OAuthClient
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from syncs.tokens.pair import TokenPair
from syncs.tokens.store import TokenRefresher, TokenStore
from tests.support.clock import FakeClock
from tests.support.tokens import token_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxState(SandboxConfig(), clock=clock))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client_settings(settings: Settings, sandbox: SandboxServer) -> Settings:
    return settings.model_copy(update={"exact_base_url": sandbox.base_url})


@pytest.fixture
def connection_id(db: sessionmaker[Session]) -> int:
    with db() as session, session.begin():
        connection = Connection(name="acme", region="nl")
        session.add(connection)
        session.flush()
        return connection.id


def store_pair(
    db: sessionmaker[Session],
    settings: Settings,
    connection_id: int,
    tokens: dict[str, Any],
    received_at: float,
) -> TokenPair:
    """Store a token response as if it had arrived at `received_at`."""
    pair = TokenPair(tokens["access_token"], tokens["refresh_token"], received_at, float(tokens["expires_in"]))
    with db() as session, session.begin():
        token_store(db, settings).save(session, connection_id, pair)
    return pair


@pytest.fixture
def open_exact(
    db: sessionmaker[Session], connection_id: int, redis_client: Any, clock: FakeClock
) -> Callable[[Settings], ExactClient]:
    """Opens an ExactClient for `connection_id` with the given settings (the sandbox's: `client_settings`)."""

    def open_(settings: Settings) -> ExactClient:
        return open_client(settings, connection_id, "nl", sessions=db, redis=redis_client, clock=clock)

    return open_


@pytest.fixture
def make_refresher(
    db: sessionmaker[Session], client_settings: Settings, redis_client: Any, clock: FakeClock
) -> Iterator[Any]:
    """Builds refreshers (one per simulated worker) on the sandbox, or on `base_url` when given."""
    opened: list[OAuthClient] = []

    def build(
        base_url: str | None = None,
        timeout: float = 5.0,
        redis: Any = None,
        store: TokenStore | None = None,
        settings: Settings | None = None,
    ) -> TokenRefresher:
        oauth = OAuthClient(
            base_url or client_settings.base_url_for("nl"),
            "sandbox-client",
            "sandbox-secret",
            clock=clock,
            timeout=timeout,
        )
        opened.append(oauth)
        store = store or token_store(db, client_settings)
        return TokenRefresher(store, oauth, redis or redis_client, settings or client_settings, db, clock)

    yield build
    for oauth in opened:
        oauth.close()


@pytest.fixture
def issued(
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    client_settings: Settings,
    connection_id: int,
    clock: FakeClock,
) -> dict[str, Any]:
    """A token pair from the sandbox, stored for `connection_id` as received now; counters start at zero."""
    tokens = sandbox.state.issue_tokens()
    store_pair(db, client_settings, connection_id, tokens, clock.now())
    sandbox.state.reset_counters()
    return tokens
