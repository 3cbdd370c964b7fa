"""The token window, the shared refresh under lock, and what happens when the token endpoint fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, ConnectionToken
from syncs.errors import ExactRequestError, LockUnavailableError, ReauthRequiredError, TokenRefreshError
from syncs.sandbox import SandboxServer
from syncs.settings import Settings
from syncs.token_pair import TokenPair
from syncs.token_rescue import RescueCopies
from syncs.tokens import TokenStore
from tests.client.conftest import store_pair
from tests.client.stub import Answer, StubServer
from tests.support.clock import FakeClock
from tests.support.tokens import token_store

LIFETIME, WINDOW, MARGIN = 600.0, 30.0, 2.0
REFRESHABLE = LIFETIME - WINDOW + MARGIN  # seconds after receipt when we may refresh


def race(refreshers: list[Any], threads: int, connection_id: int) -> tuple[list[str], list[BaseException]]:
    """`threads` threads asking the refreshers (in turn) for a token at the same moment: tokens and errors."""
    barrier = threading.Barrier(threads)
    results: list[str] = []
    errors: list[BaseException] = []

    def work(index: int) -> None:
        barrier.wait()
        try:
            results.append(refreshers[index % len(refreshers)].valid_access_token(connection_id))
        except BaseException as exc:
            errors.append(exc)

    started = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(30)
    return results, errors


def test_token_is_reused_until_the_refresh_window(
    issued: dict[str, Any], make_refresher: Any, sandbox: SandboxServer, clock: FakeClock, connection_id: int
) -> None:
    refresher = make_refresher()
    clock.advance(REFRESHABLE - 0.01)
    assert refresher.valid_access_token(connection_id) == issued["access_token"]
    assert sandbox.state.counters.token_requests == 0


def test_refresh_inside_the_window_commits_the_new_pair(
    issued: dict[str, Any],
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
) -> None:
    refresher = make_refresher()
    clock.advance(REFRESHABLE)
    new_token = refresher.valid_access_token(connection_id)
    assert new_token != issued["access_token"]
    counters = sandbox.state.counters
    assert (counters.token_requests, counters.token_refresh_refused_early) == (1, 0)
    stored = token_store(db, client_settings).load(connection_id)
    assert stored.access_token == new_token
    assert stored.refresh_token != issued["refresh_token"]
    assert stored.received_at == pytest.approx(clock.now(), abs=1e-3)
    assert stored.expires_in == pytest.approx(LIFETIME)
    with db() as session:
        row = session.get(ConnectionToken, connection_id)
        assert row is not None and row.last_refresh_at is not None and row.last_refresh_error is None
    # The new token is used until its own window.
    assert refresher.valid_access_token(connection_id) == new_token
    assert sandbox.state.counters.token_requests == 1


def test_expired_token_is_refreshed(
    issued: dict[str, Any], make_refresher: Any, sandbox: SandboxServer, clock: FakeClock, connection_id: int
) -> None:
    clock.advance(LIFETIME + 3600)
    assert make_refresher().valid_access_token(connection_id) != issued["access_token"]
    assert sandbox.state.counters.token_requests == 1


def test_many_threads_make_one_token_request(
    issued: dict[str, Any], make_refresher: Any, sandbox: SandboxServer, clock: FakeClock, connection_id: int
) -> None:
    refreshers = [make_refresher() for _ in range(4)]  # four "workers", four threads each
    clock.advance(REFRESHABLE + 5)
    results, errors = race(refreshers, 16, connection_id)
    assert errors == []
    assert len(results) == 16 and len(set(results)) == 1
    assert results[0] != issued["access_token"]
    counters = sandbox.state.counters
    assert counters.token_requests == 1
    assert counters.old_refresh_token_used == 0


def test_revoked_refresh_token_marks_reauth_without_a_retry_storm(
    issued: dict[str, Any],
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
) -> None:
    sandbox.state.revoke_refresh_tokens()
    clock.advance(REFRESHABLE + 1)
    refreshers = [make_refresher() for _ in range(3)]
    _, raised = race(refreshers, 6, connection_id)
    assert len(raised) == 6 and all(isinstance(exc, ReauthRequiredError) for exc in raised)
    assert sandbox.state.counters.token_requests == 1
    with db() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        assert connection.status == ConnectionStatus.REAUTH_REQUIRED
        assert "invalid_grant" in (connection.status_reason or "")
    # Later calls do not ask Exact again either.
    with pytest.raises(ReauthRequiredError):
        make_refresher().valid_access_token(connection_id)
    assert sandbox.state.counters.token_requests == 1


def test_early_refresh_refusal_is_fatal_and_keeps_the_pair(
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
) -> None:
    # Our stored receipt time says the token is old, but Exact issued it just now: Exact refuses the refresh.
    tokens = sandbox.state.issue_tokens()
    before = store_pair(db, client_settings, connection_id, tokens, clock.now() - LIFETIME)
    with pytest.raises(ExactRequestError) as raised:
        make_refresher().valid_access_token(connection_id)
    assert raised.value.status_code == 401
    assert sandbox.state.counters.token_refresh_refused_early == 1
    assert token_store(db, client_settings).load(connection_id) == before


@pytest.mark.parametrize("failure", ["500", "timeout"])
def test_token_endpoint_failure_leaves_the_pair_untouched(
    failure: str,
    make_refresher: Any,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
) -> None:
    pair = {"access_token": "A1", "refresh_token": "R1", "expires_in": "600"}
    before = store_pair(db, client_settings, connection_id, pair, clock.now() - LIFETIME)
    answer = Answer(500, "oops") if failure == "500" else Answer(200, {"access_token": "late"}, delay=1.0)
    with StubServer(lambda path: answer) as stub:
        refresher = make_refresher(base_url=stub.base_url, timeout=0.2)
        with pytest.raises(TokenRefreshError):
            refresher.valid_access_token(connection_id)
        assert len(stub.requests) == 1
    assert token_store(db, client_settings).load(connection_id) == before
    with db() as session:
        row = session.get(ConnectionToken, connection_id)
        connection = session.get(Connection, connection_id)
        assert row is not None and row.last_refresh_error and row.last_refresh_error_at is not None
        assert connection is not None and connection.status == ConnectionStatus.ACTIVE


def test_redis_down_means_no_refresh(
    issued: dict[str, Any], make_refresher: Any, sandbox: SandboxServer, clock: FakeClock, connection_id: int
) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    clock.advance(REFRESHABLE + 1)
    with pytest.raises(LockUnavailableError, match="Redis unavailable"):
        make_refresher(redis=dead).valid_access_token(connection_id)
    assert sandbox.state.counters.token_requests == 0
    # A still valid token needs no lock at all.
    clock.advance(-10)
    assert make_refresher(redis=dead).valid_access_token(connection_id) == issued["access_token"]


def test_after_unauthorized_prefers_a_newer_stored_token(
    issued: dict[str, Any], make_refresher: Any, sandbox: SandboxServer, connection_id: int
) -> None:
    assert make_refresher().after_unauthorized(connection_id, "some-older-token") == issued["access_token"]
    assert sandbox.state.counters.token_requests == 0


def test_token_pair_repr_hides_tokens(issued: dict[str, Any]) -> None:
    pair = TokenPair(issued["access_token"], issued["refresh_token"], 1.0, 600.0)
    assert issued["access_token"] not in repr(pair)
    assert issued["refresh_token"] not in repr(pair)


def test_unauthorized_young_token_is_not_refreshed_early(
    issued: dict[str, Any], make_refresher: Any, sandbox: SandboxServer, connection_id: int
) -> None:
    """Exact refused a token that is young by our clock and did not say it expired: no token request."""
    with pytest.raises(ExactRequestError, match="not refreshing early") as raised:
        make_refresher().after_unauthorized(connection_id, issued["access_token"])
    assert raised.value.status_code == 401
    assert "exact-sync connect acme" in str(raised.value)
    assert issued["access_token"] not in str(raised.value) and issued["refresh_token"] not in str(raised.value)
    assert sandbox.state.counters.token_requests == 0


def test_unauthorized_with_expired_hint_refreshes_once(
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
) -> None:
    # Exact issued the pair long ago, our record says "just now" (e.g. clock skew): Exact's word counts.
    tokens = sandbox.state.issue_tokens()
    clock.advance(LIFETIME + 1)
    store_pair(db, client_settings, connection_id, tokens, clock.now())
    sandbox.state.reset_counters()
    new = make_refresher().after_unauthorized(connection_id, tokens["access_token"], expired=True)
    assert new != tokens["access_token"]
    assert sandbox.state.counters.token_requests == 1


def test_unauthorized_inside_the_window_refreshes_once(
    make_refresher: Any,
    sandbox: SandboxServer,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
) -> None:
    tokens = sandbox.state.issue_tokens()
    clock.advance(REFRESHABLE)
    store_pair(db, client_settings, connection_id, tokens, clock.now() - REFRESHABLE)
    sandbox.state.reset_counters()
    assert make_refresher().after_unauthorized(connection_id, tokens["access_token"]) != tokens["access_token"]
    assert sandbox.state.counters.token_requests == 1


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
    rescued, _ = copies.unseal(blob)

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
    clock.advance(REFRESHABLE)
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
    redis_client.set(copies.key(connection_id), copies.seal(stale, "some-older-refresh"))
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
        db, cipher, plant=lambda: redis_client.set(copies.key(connection_id), copies.seal(new, issued["refresh_token"]))
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
    ours = copies.seal(TokenPair("a1", "r1", clock.now(), LIFETIME), "r0")
    newer = copies.seal(TokenPair("a2", "r2", clock.now(), LIFETIME), "r1")
    redis_client.set(copies.key(connection_id), newer)
    copies.delete(connection_id, ours)  # another worker wrote a newer copy meanwhile: it stays
    assert redis_client.get(copies.key(connection_id)) == newer
    copies.delete(connection_id, newer)
    assert redis_client.get(copies.key(connection_id)) is None
