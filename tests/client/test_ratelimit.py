"""The shared rate gate on real Redis, driven by headers as Exact sends them (resets in epoch ms)."""

from __future__ import annotations

from typing import Any

import pytest

from syncs.errors import RateLimitedError
from syncs.ratelimit import RateGate, parse_reset
from tests.support.clock import FakeClock

NOW = 1_800_000_030.0  # half a minute past a whole minute


@pytest.fixture
def gates(redis_client: Any, redis_prefix: str) -> tuple[RateGate, RateGate, FakeClock]:
    clock = FakeClock(NOW)
    return RateGate(redis_client, redis_prefix, clock), RateGate(redis_client, redis_prefix, clock), clock


def test_429_without_headers_blocks_every_worker_until_the_next_minute(
    gates: tuple[RateGate, RateGate, FakeClock],
) -> None:
    one, other, clock = gates
    one.observe("124132", 429, {})
    other.before_request("124132")
    assert clock.slept == [pytest.approx(30.0)]
    other.before_request("124132")  # the block is over
    assert len(clock.slept) == 1
    other.before_request("124133")  # other divisions are not affected
    assert len(clock.slept) == 1


def test_minutely_headers_in_milliseconds(gates: tuple[RateGate, RateGate, FakeClock]) -> None:
    one, other, clock = gates
    reset_ms = str(int((NOW + 12) * 1000))
    one.observe("1", 200, {"X-RateLimit-Minutely-Remaining": "0", "X-RateLimit-Minutely-Reset": reset_ms})
    other.before_request("1")
    assert clock.slept == [pytest.approx(12.0)]
    status = other.status("1")
    assert status.minutely_remaining == 0
    assert status.minutely_reset == pytest.approx(NOW + 12)


def test_remaining_budget_means_no_wait(gates: tuple[RateGate, RateGate, FakeClock]) -> None:
    one, _, clock = gates
    one.observe("1", 200, {"X-RateLimit-Minutely-Remaining": "5", "X-RateLimit-Minutely-Reset": "1800000060000"})
    one.before_request("1")
    assert clock.slept == []


def test_daily_only_429_refuses_instead_of_sleeping(gates: tuple[RateGate, RateGate, FakeClock]) -> None:
    one, other, clock = gates
    midnight = 1_800_057_600.0
    one.observe("1", 429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(midnight * 1000))})
    with pytest.raises(RateLimitedError) as raised:
        other.before_request("1")
    assert raised.value.retry_at == midnight
    assert clock.slept == []


def test_reset_parsing() -> None:
    assert parse_reset("1800000060000") == 1_800_000_060.0
    assert parse_reset("1800000060") == 1_800_000_060.0  # seconds, as some proxies send
    assert parse_reset("soon") is None and parse_reset(None) is None
