"""Rescue copies of rotated token pairs: a pair Exact handed out survives a failed commit, a lapsed lock and export."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus
from syncs.core.errors import LockUnavailableError
from syncs.core.settings import Settings
from syncs.sandbox import SandboxServer
from syncs.tokens.pair import TokenPair
from syncs.tokens.rescue import RescueCopies
from syncs.tokens.store import TokenStore
from tests.client.test_tokens import DATE_ROUNDING, LIFETIME, REFRESHABLE
from tests.support.clock import FakeClock
from tests.support.tokens import token_store


class CommitFailsOnce(TokenStore):
    """Fault seam: Postgres goes away right after Exact answered the refresh (the new pair is not committed)."""

    failed = False

    def save(self, session: Session, connection_id: int, pair: TokenPair, *, refreshed: bool = False) -> None:
        if refreshed and not self.failed:
            self.failed = True
            raise OperationalError("INSERT INTO connection_tokens ...", {}, Exception("server closed the connection"))
        super().save(session, connection_id, pair, refreshed=refreshed)


@pytest.fixture
def copies(db: sessionmaker[Session], client_settings: Settings, redis_client: Any) -> RescueCopies:
    """The refresher's rescue copies, read and planted directly by the tests."""
    return RescueCopies(redis_client, token_store(db, client_settings).cipher, client_settings.redis_key_prefix)


def test_rotated_pair_survives_a_failed_commit(
    issued: dict[str, Any],
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
    redis_client: Any,
    copies: RescueCopies,
) -> None:
    store = token_store(db, client_settings)
    failing = CommitFailsOnce(db, store.cipher)
    clock.advance(REFRESHABLE)
    with pytest.raises(OperationalError):
        make_refresher(store=failing).valid_access_token(connection_id)
    assert sandbox.state.counters.token_requests == 1
    assert store.load(connection_id).refresh_token == issued["refresh_token"]  # not committed
    blob = redis_client.get(copies.key(connection_id))
    assert blob is not None
    assert issued["refresh_token"].encode() not in blob  # encrypted
    rescued, _ = copies.unseal(connection_id, blob)

    token = make_refresher().valid_access_token(connection_id)
    counters = sandbox.state.counters
    assert (counters.token_requests, counters.old_refresh_token_used) == (1, 0)
    assert token == rescued.access_token
    stored = store.load(connection_id)
    assert (stored.access_token, stored.refresh_token) == (rescued.access_token, rescued.refresh_token)
    assert stored.received_at == pytest.approx(rescued.received_at, abs=1e-3)
    assert redis_client.get(copies.key(connection_id)) is None
    with db() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None and connection.status == ConnectionStatus.ACTIVE
    # The rescued refresh token is the live one: the next window refreshes normally.
    clock.advance(REFRESHABLE + DATE_ROUNDING)
    assert make_refresher().valid_access_token(connection_id) != token
    assert (sandbox.state.counters.token_requests, sandbox.state.counters.old_refresh_token_used) == (2, 0)


def test_stale_rescue_copy_is_deleted_and_ignored(
    issued: dict[str, Any],
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
    redis_client: Any,
    copies: RescueCopies,
) -> None:
    stale = TokenPair("stale-access", "stale-refresh", clock.now(), LIFETIME)
    redis_client.set(copies.key(connection_id), copies.seal(connection_id, stale, "some-older-refresh"))
    clock.advance(REFRESHABLE)
    token = make_refresher().valid_access_token(connection_id)
    assert token not in (issued["access_token"], "stale-access")
    assert sandbox.state.counters.token_requests == 1
    assert token_store(db, client_settings).load(connection_id).access_token == token
    assert redis_client.get(copies.key(connection_id)) is None


class RescueWritesFail(redis.Redis):  # type: ignore[type-arg]
    def set(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        if ":token-rescue:" in str(name):
            raise redis.ConnectionError("Redis went away")
        return super().set(name, *args, **kwargs)


def test_rescue_write_failure_does_not_stop_the_commit(
    issued: dict[str, Any],
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
    redis_client: Any,
) -> None:
    flaky = RescueWritesFail(connection_pool=redis_client.connection_pool)
    clock.advance(REFRESHABLE)
    token = make_refresher(redis=flaky).valid_access_token(connection_id)
    assert token != issued["access_token"]
    assert token_store(db, client_settings).load(connection_id).access_token == token
    assert sandbox.state.counters.token_requests == 1


class RescueAppearsWhileWaiting(TokenStore):
    """Fault seam: while this worker waits for the token row, another (whose lock had lapsed) got a new pair from
    Exact, wrote its rescue copy and then failed to commit."""

    def __init__(self, *args: Any, plant: Callable[[], None]) -> None:
        super().__init__(*args)
        self._plant = plant

    def load_for_update(self, session: Session, connection_id: int) -> TokenPair:
        self._plant()
        return super().load_for_update(session, connection_id)


def test_a_rescue_copy_written_while_we_waited_is_adopted_instead_of_spending_the_dead_token(
    issued: dict[str, Any],
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
    redis_client: Any,
    copies: RescueCopies,
) -> None:
    clock.advance(REFRESHABLE)  # the stored (old) pair is due: without the copy we would refresh with a dead token
    rotated = sandbox.state.issue_tokens()  # what Exact gave the other worker; `issued`'s refresh token is dead
    new = TokenPair(rotated["access_token"], rotated["refresh_token"], clock.now(), LIFETIME)
    cipher = token_store(db, client_settings).cipher
    store = RescueAppearsWhileWaiting(
        db,
        cipher,
        plant=lambda: redis_client.set(
            copies.key(connection_id), copies.seal(connection_id, new, issued["refresh_token"])
        ),
    )
    sandbox.state.reset_counters()
    token = make_refresher(store=store).valid_access_token(connection_id)
    assert token == rotated["access_token"]
    assert sandbox.state.counters.token_requests == 0
    stored = token_store(db, client_settings).load(connection_id)
    assert (stored.access_token, stored.refresh_token) == (rotated["access_token"], rotated["refresh_token"])
    assert redis_client.get(copies.key(connection_id)) is None


class SlowRowLock(TokenStore):
    """Fault seam: the token row lock takes longer than the Redis token lock lives."""

    def load_for_update(self, session: Session, connection_id: int) -> TokenPair:
        time.sleep(0.3)
        return super().load_for_update(session, connection_id)


def test_a_lapsed_token_lock_never_reaches_the_token_endpoint(
    issued: dict[str, Any],
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
) -> None:
    short_lock = client_settings.model_copy(update={"token_lock_timeout_seconds": 0.1})
    store = SlowRowLock(db, token_store(db, client_settings).cipher)
    clock.advance(REFRESHABLE)
    with pytest.raises(LockUnavailableError, match="lapsed"):
        make_refresher(store=store, settings=short_lock).valid_access_token(connection_id)
    assert sandbox.state.counters.token_requests == 0
    assert token_store(db, client_settings).load(connection_id).refresh_token == issued["refresh_token"]


def test_a_rescue_copy_is_only_deleted_by_whoever_read_or_wrote_it(
    copies: RescueCopies, redis_client: Any, connection_id: int, clock: FakeClock
) -> None:
    ours = copies.seal(connection_id, TokenPair("a1", "r1", clock.now(), LIFETIME), "r0")
    newer = copies.seal(connection_id, TokenPair("a2", "r2", clock.now(), LIFETIME), "r1")
    redis_client.set(copies.key(connection_id), newer)
    copies.delete(connection_id, ours)  # another worker wrote a newer copy meanwhile: it stays
    assert redis_client.get(copies.key(connection_id)) == newer
    copies.delete(connection_id, newer)
    assert redis_client.get(copies.key(connection_id)) is None
