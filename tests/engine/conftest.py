from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models import Connection
from syncs.core.crypto import TokenCipher
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient, open_client
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from syncs.tokens.pair import TokenPair
from syncs.tokens.store import TokenStore
from tests.support.clock import FakeClock


@pytest.fixture
def connection_id(db: sessionmaker[Session]) -> int:
    with db.begin() as session:
        connection = Connection(name="engine-test", region="nl")
        session.add(connection)
        session.flush()
        return connection.id


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    config = SandboxConfig(page_size=4, minutely_limit=None, daily_limit=None)
    server = SandboxServer(SandboxState(config, clock=FakeClock()))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def exact(
    sandbox: SandboxServer,
    settings: Settings,
    db: sessionmaker[Session],
    connection_id: int,
    redis_client: Any,
) -> Iterator[ExactClient]:
    clock = sandbox.state.clock
    settings = settings.model_copy(update={"exact_base_url": sandbox.base_url})
    assert settings.token_encryption_key is not None
    issued = sandbox.state.issue_tokens()
    pair = TokenPair(issued["access_token"], issued["refresh_token"], clock.now(), float(issued["expires_in"]))
    with db.begin() as session:
        TokenStore(db, TokenCipher(settings.token_encryption_key.get_secret_value())).save(session, connection_id, pair)
    with open_client(settings, connection_id, "nl", sessions=db, redis=redis_client, clock=clock) as client:
        yield client
