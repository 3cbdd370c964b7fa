"""The token window, the shared refresh under lock, and what happens when the token endpoint fails."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, ConnectionToken
from syncs.core.errors import ExactRequestError, LockUnavailableError, ReauthRequiredError, TokenRefreshError
from syncs.core.settings import Settings
from syncs.sandbox import SandboxServer
from syncs.tokens.pair import TokenPair
from tests.client.conftest import store_pair
from tests.client.stub import Answer, StubServer
from tests.support.clock import FakeClock
from tests.support.tokens import token_store

LIFETIME, WINDOW, MARGIN = 600.0, 30.0, 2.0
REFRESHABLE = LIFETIME - WINDOW + MARGIN  # seconds after receipt when we may refresh
# A pair from the token endpoint is received at Exact's Date of the answer rounded up (the header has 1 s resolution).
DATE_ROUNDING = 1.0


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
    assert stored.received_at == pytest.approx(clock.now() + DATE_ROUNDING, abs=1e-3)
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
