"""The shared rate gate on real Redis, driven by headers as Exact sends them (resets in epoch ms)."""

from __future__ import annotations

from typing import Any

import pytest

from syncs.core.clock import SYSTEM_CLOCK
from syncs.core.errors import LockUnavailableError, RateLimitedError
from syncs.limits.ratelimit import RateGate, parse_reset
from tests.support.clock import FakeClock

NOW = 1_800_000_030.0  # half a minute past a whole minute
MINUTE_END = 1_800_000_060.0
MARGIN = 0.5


def minutely(remaining: int, limit: int = 60, reset: float = MINUTE_END) -> dict[str, str]:
    return {
        "X-RateLimit-Minutely-Limit": str(limit),
        "X-RateLimit-Minutely-Remaining": str(remaining),
        "X-RateLimit-Minutely-Reset": str(int(reset * 1000)),
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def gates(redis_client: Any, redis_prefix: str, clock: FakeClock) -> tuple[RateGate, RateGate]:
    """Two workers' gates on one Redis; a slot expires 5 s (fake time) after it was taken."""
    return tuple(RateGate(redis_client, redis_prefix, clock, slot_ttl=5.0, reset_margin=MARGIN) for _ in "ab")  # type: ignore[return-value]


def call(gate: RateGate, division: str, status: int = 200, headers: dict[str, str] | None = None) -> None:
    slot = gate.acquire(division)
    gate.observe(division, status, headers or {})
    gate.release(division, slot)


def test_429_without_headers_blocks_every_worker_until_the_next_minute(
    gates: tuple[RateGate, RateGate], clock: FakeClock
) -> None:
    one, other = gates
    one.observe("124132", 429, {})
    call(other, "124132")
    assert clock.slept == [pytest.approx(30.0 + MARGIN)]
    call(other, "124132")  # the block is over
    call(other, "124133")  # other divisions are not affected
    assert len(clock.slept) == 1


def test_reservations_spend_the_known_budget_before_exact_answers(
    gates: tuple[RateGate, RateGate], clock: FakeClock
) -> None:
    """Both workers saw 2 left: the third reservation waits for the reset instead of being sent into a 429."""
    one, other = gates
    one.observe("1", 200, minutely(2))
    first = one.acquire("1")
    one.release("1", first)  # answers not in yet: only the reservations count
    second = other.acquire("1")
    other.release("1", second)
    assert clock.slept == []
    assert one.status("1").minutely_remaining == 0
    other.acquire("1")
    assert clock.slept == [pytest.approx(MINUTE_END + MARGIN - NOW)]
    assert one.status("1").minutely_remaining == 59  # refilled to the limit, one reserved


def test_an_answer_never_raises_the_budget_within_a_window(gates: tuple[RateGate, RateGate]) -> None:
    one, _ = gates
    one.observe("1", 200, minutely(10))
    call(one, "1", headers=minutely(9))
    slot = one.acquire("1")  # reserved: 8 left locally
    one.observe("1", 200, minutely(20, reset=MINUTE_END - 60))  # a late answer from the previous window
    assert one.status("1").minutely_remaining == 8
    one.observe("1", 200, minutely(9))  # Exact has not counted our reservation yet: keep ours
    assert one.status("1").minutely_remaining == 8
    one.observe("1", 200, minutely(3))  # someone else spends this division's budget too
    assert one.status("1").minutely_remaining == 3
    one.release("1", slot)


def test_one_request_in_flight_per_division(gates: tuple[RateGate, RateGate], clock: FakeClock) -> None:
    one, other = gates
    held = one.acquire("1")
    other_division = other.acquire("2")  # another division has its own slot
    other.release("2", other_division)
    assert clock.slept == []
    # The holder was killed: its slot expires after the TTL and the other worker gets it.
    taken = other.acquire("1")
    assert clock.now() - NOW == pytest.approx(5.0, abs=0.1)
    other.release("1", taken)
    one.release("1", held)  # releasing an expired slot is harmless


def test_a_slot_that_never_frees_up_gives_the_task_back(redis_client: Any, redis_prefix: str) -> None:
    clock = FakeClock(NOW)
    gate = RateGate(redis_client, redis_prefix, clock, slot_ttl=1000.0, max_wait=2.0)
    gate.acquire("1")
    with pytest.raises(LockUnavailableError, match="no request slot"):
        gate.acquire("1")


def test_daily_only_429_refuses_instead_of_sleeping(gates: tuple[RateGate, RateGate], clock: FakeClock) -> None:
    one, other = gates
    midnight = 1_800_057_600.0
    one.observe("1", 429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(midnight * 1000))})
    with pytest.raises(RateLimitedError) as raised:
        other.acquire("1")
    assert raised.value.retry_at == midnight
    assert clock.slept == []
    assert other.status("1").daily_low(clock.now(), 0.1)


def test_the_daily_budget_refills_after_its_reset(gates: tuple[RateGate, RateGate], clock: FakeClock) -> None:
    one, _ = gates
    reset = NOW + 100
    one.observe("1", 200, {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    with pytest.raises(RateLimitedError):
        one.acquire("1")
    clock.advance(101)
    call(one, "1")
    assert one.status("1").daily_remaining == 4999
    assert not one.status("1").daily_low(clock.now(), 0.1)


def test_a_long_block_hands_the_task_back(redis_client: Any, redis_prefix: str) -> None:
    clock = FakeClock(NOW)
    gate = RateGate(redis_client, redis_prefix, clock, max_wait=10.0)
    gate.observe("1", 429, minutely(0, reset=NOW + 300))
    with pytest.raises(RateLimitedError) as raised:
        gate.acquire("1")
    assert raised.value.retry_at == pytest.approx(NOW + 300 + 0.5)
    assert clock.slept == []


def test_reset_parsing() -> None:
    assert parse_reset("1800000060000") == 1_800_000_060.0
    assert parse_reset("1800000060") == 1_800_000_060.0  # seconds, as some proxies send
    assert parse_reset("soon") is None and parse_reset(None) is None


def test_a_slot_had_at_once_says_it_waited_nothing(redis_client: Any, redis_prefix: str) -> None:
    """On the real clock too: after a wait the transport re-checks the access token (a DB read), which a request
    that never waited must not pay."""
    gate = RateGate(redis_client, redis_prefix, SYSTEM_CLOCK)
    for _ in range(3):
        slot = gate.acquire("124132")
        assert slot.waited == 0
        gate.release("124132", slot)
