"""Exact's clock against ours: the bounds one answer gives, the shared estimate, and refresh windows kept in
Exact's time against a sandbox whose clock is 20 s behind the worker's."""

from __future__ import annotations

import random
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.settings import Settings
from syncs.exact.client import open_client
from syncs.exact.exact_time import ClockOffsets, ExactTime, OffsetBounds, exact_time_for
from syncs.exact.oauth import OAuthClient
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from syncs.tokens.pair import TokenPair
from tests.client.conftest import store_pair
from tests.client.test_tokens import LIFETIME, WINDOW
from tests.support.cli import CliInvoke, aimed_at, cli_invoker
from tests.support.clock import FakeClock
from tests.support.tokens import token_store

SKEW = -20.0  # the sandbox (Exact) runs 20 s behind the worker
HOST = "https://start.exactonline.nl"


def date(epoch: float) -> dict[str, str]:
    return {"Date": formatdate(epoch, usegmt=True)}


# -- the bounds of one exchange --------------------------------------------------------------------------------


def test_one_exchange_bounds_the_offset() -> None:
    bounds = OffsetBounds.from_exchange(1000.2, 1000.7, formatdate(980.0, usegmt=True))
    assert bounds == OffsetBounds(lower=980.0 - 1000.7, upper=981.0 - 1000.2, measured_at=1000.7)
    assert OffsetBounds.from_exchange(1.0, 2.0, None) is None
    assert OffsetBounds.from_exchange(1.0, 2.0, "not a date") is None


def test_the_true_offset_always_lies_within_the_bounds() -> None:
    """Whenever during the exchange Exact stamps its (truncated) Date, the bounds hold its real offset."""
    chance = random.Random(7)
    for _ in range(2000):
        offset = chance.uniform(-90, 90)
        sent = 1_800_000_000 + chance.uniform(0, 1000)
        received = sent + chance.choice([0.0, chance.uniform(0, 0.05), chance.uniform(0, 3)])
        stamped_at = chance.uniform(sent, received)  # our clock, when Exact wrote the header
        bounds = OffsetBounds.from_exchange(sent, received, formatdate(stamped_at + offset, usegmt=True))
        assert bounds is not None
        assert bounds.lower <= offset < bounds.upper, (offset, bounds)
        assert bounds.upper - bounds.lower <= received - sent + 1.0 + 1e-9


def test_beyond_only_when_surely_beyond() -> None:
    assert OffsetBounds(-21.0, -19.5, 0).beyond(5)
    assert OffsetBounds(6.0, 7.0, 0).beyond(5)
    assert not OffsetBounds(4.5, 5.5, 0).beyond(5)  # may be within


# -- the estimate one host keeps ----------------------------------------------------------------------------


def test_now_is_our_clock_plus_the_lower_bound_until_the_bounds_are_too_old() -> None:
    clock = FakeClock(1_800_000_000.5)
    exact = ExactTime(clock, HOST, max_age=600)
    assert exact.now() == clock.now()  # nothing measured: offset 0, as before any estimate
    exact.observe(clock.now(), clock.now(), date(clock.now() + SKEW))
    assert exact.now() == pytest.approx(clock.now() + SKEW - 0.5, abs=1e-6)  # Date truncates: the early side
    clock.advance(600)
    assert exact.now() == pytest.approx(clock.now() + SKEW - 0.5, abs=1e-6)
    clock.advance(1)
    assert exact.now() == clock.now()  # a stepped clock would make old bounds wrong: not used


def test_stamped_is_the_latest_moment_exact_can_have_answered() -> None:
    clock = FakeClock(1_800_000_000.0)
    exact = ExactTime(clock, HOST)
    assert exact.stamped(clock.now(), date(clock.now() + SKEW + 0.9)) == clock.now() + SKEW + 1
    assert exact.stamped(clock.now(), {}) == clock.now()  # no header, no estimate: our clock
    exact.observe(clock.now() - 0.5, clock.now(), date(clock.now() + SKEW))
    assert exact.stamped(clock.now(), {}) == pytest.approx(clock.now() + SKEW + 1.5, abs=1e-6)  # the upper bound


def test_bounds_are_shared_per_host_and_machine(redis_client: Any, redis_prefix: str) -> None:
    clock = FakeClock()
    here = ClockOffsets(redis_client, redis_prefix, machine="worker-1")
    measuring = ExactTime(clock, HOST, here)
    measuring.observe(clock.now(), clock.now(), date(clock.now() + SKEW), save=True)
    starting = ExactTime(clock, HOST, ClockOffsets(redis_client, redis_prefix, machine="worker-1"))
    assert starting.now() == clock.now() + SKEW  # another process of the machine, before its first answer
    elsewhere = ExactTime(clock, HOST, ClockOffsets(redis_client, redis_prefix, machine="worker-2"))
    assert elsewhere.now() == clock.now()  # another machine has another clock
    other_host = ExactTime(clock, "https://start.exactonline.be", here)
    assert other_host.now() == clock.now()
    assert [(h, m) for h, m, _ in here.every()] == [(HOST, "worker-1")]


def test_api_answers_update_the_shared_bounds_at_most_every_save_interval(
    redis_client: Any, redis_prefix: str
) -> None:
    clock = FakeClock()
    offsets = ClockOffsets(redis_client, redis_prefix, machine="w")
    exact = ExactTime(clock, HOST, offsets, save_every=60)
    exact.observe(clock.now(), clock.now(), date(clock.now() - 3))
    clock.advance(30)
    exact.observe(clock.now(), clock.now(), date(clock.now() - 4))
    saved = offsets.load(HOST)
    assert saved is not None and saved.lower == -3  # not yet written again
    assert exact.now() == clock.now() - 4  # this process uses its newest at once
    exact.observe(clock.now(), clock.now(), date(clock.now() - 5), save=True)  # a token answer: always
    saved = offsets.load(HOST)
    assert saved is not None and saved.lower == -5


def test_redis_down_leaves_the_process_estimate_working() -> None:
    clock = FakeClock()
    gone: redis.Redis[bytes] = redis.Redis(port=1, socket_connect_timeout=0.2)
    exact = ExactTime(clock, HOST, ClockOffsets(gone, "p"), save_every=0)
    exact.observe(clock.now(), clock.now(), date(clock.now() + SKEW), save=True)
    assert exact.now() == clock.now() + SKEW


# -- windows in Exact's time, against a skewed sandbox over HTTP ---------------------------------------------


@pytest.fixture
def skewed(clock: FakeClock) -> Iterator[SandboxServer]:
    config = SandboxConfig(clock_offset_seconds=SKEW, minutely_limit=None, daily_limit=None)
    with SandboxServer(SandboxState(config, clock=clock)) as server:
        yield server


def consent(
    sandbox: SandboxServer, settings: Settings, db: sessionmaker[Session], connection_id: int, clock: Clock
) -> TokenPair:
    """Tokens through the real code exchange (as the connect flow gets them), stored for `connection_id`."""
    code = sandbox.state.issue_code()
    redis_client: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url)
    oauth = OAuthClient(
        sandbox.base_url,
        sandbox.state.config.client_id,
        sandbox.state.config.client_secret,
        clock=clock,
        exact_time=exact_time_for(settings, redis_client, clock, "nl"),
    )
    try:
        pair = oauth.exchange_code(code, settings.exact_redirect_uri)
    finally:
        oauth.close()
        redis_client.close()
    with db.begin() as session:
        token_store(db, settings).save(session, connection_id, pair)
    return pair


def test_refresh_waits_for_the_window_by_exacts_clock(
    skewed: SandboxServer,
    settings: Settings,
    db: sessionmaker[Session],
    connection_id: int,
    redis_client: Any,
    clock: FakeClock,
) -> None:
    """Exact's clock is 20 s behind ours: by our clock its window opens 20 s later than the token's age says.

    Ignoring the offset refreshes 20 s early, which the sandbox (like Exact) refuses with 401."""
    settings = aimed_at(settings, skewed)
    received = clock.now()
    pair = consent(skewed, settings, db, connection_id, clock)
    assert pair.received_at == received + SKEW + 1  # Exact's Date of the answer, rounded up
    skewed.state.reset_counters()
    opens = received + LIFETIME - WINDOW  # our clock, when Exact's window opens
    clock.advance(LIFETIME - WINDOW - 40)
    refreshed_at = None
    with open_client(settings, connection_id, "nl", sessions=db, redis=redis_client, clock=clock) as client:
        while refreshed_at is None and clock.now() < received + LIFETIME:
            clock.advance(1)
            client.current_me()
            if skewed.state.counters.token_requests:
                refreshed_at = clock.now()
    counters = skewed.state.counters
    assert counters.token_refresh_refused_early == 0
    assert refreshed_at is not None, "never refreshed before the access token expired"
    assert opens <= refreshed_at < received + LIFETIME
    assert (counters.token_requests, counters.http_401) == (1, 0)


def test_api_answers_feed_the_shared_estimate(
    skewed: SandboxServer,
    settings: Settings,
    db: sessionmaker[Session],
    connection_id: int,
    redis_client: Any,
    clock: FakeClock,
) -> None:
    settings = aimed_at(settings, skewed)
    store_pair(db, settings, connection_id, skewed.state.issue_tokens(), clock.now() + SKEW)  # no token answer
    with open_client(settings, connection_id, "nl", sessions=db, redis=redis_client, clock=clock) as client:
        client.current_me()
    assert skewed.state.counters.token_requests == 0
    assert ClockOffsets(redis_client, settings.redis_key_prefix).load(skewed.base_url) == OffsetBounds(
        SKEW, SKEW + 1, clock.now()
    )


def status(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """`exact-sync status` in process, configured through the environment."""
    invoker = cli_invoker(settings, monkeypatch)
    cli: CliInvoke = next(invoker)
    try:
        result = cli("status")
    finally:
        next(invoker, None)  # its cleanup
    assert result.exit_code == 0, result.output
    return result.output


def test_status_warns_when_exacts_clock_is_far_off(
    settings: Settings, db: sessionmaker[Session], connection_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real clock: `status` reads the estimate the token exchange left in Redis."""
    config = SandboxConfig(clock_offset_seconds=SKEW)
    with SandboxServer(SandboxState(config)) as sandbox:
        settings = aimed_at(settings, sandbox)
        consent(sandbox, settings, db, connection_id, SYSTEM_CLOCK)
    output = status(settings, monkeypatch)
    assert "Exact's clock against ours" in output
    assert f"against {sandbox.base_url}" in output and "warning" in output, output
    assert "more than 5 s off Exact's" in output


def test_status_quiet_about_a_small_offset(
    settings: Settings, db: sessionmaker[Session], connection_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SandboxServer(SandboxState(SandboxConfig())) as sandbox:
        settings = aimed_at(settings, sandbox)
        consent(sandbox, settings, db, connection_id, SYSTEM_CLOCK)
    output = status(settings, monkeypatch)
    assert "Exact's clock against ours" in output and sandbox.base_url in output
    assert "warning" not in output, output
