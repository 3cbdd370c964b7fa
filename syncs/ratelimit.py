"""A rate gate per division, shared by every worker through Redis.

Exact's limits are per company (division) and app: a minutely and a daily budget, reported in
X-RateLimit-* headers with resets in epoch milliseconds. A 429 may carry only the exhausted window's headers,
or none at all. Each response updates the shared state; before each request a worker waits out a spent minute
(or a 429 block), and refuses with RateLimitedError when the daily budget is spent rather than sleeping for
hours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from redis.exceptions import RedisError

from syncs.clock import Clock
from syncs.errors import LockUnavailableError, RateLimitedError

log = structlog.get_logger(__name__)

# A longer wait means odd headers: give the task back rather than block a worker.
MAX_WAIT_SECONDS = 120.0
STATE_TTL_SECONDS = 2 * 86400


@dataclass(frozen=True)
class RateState:
    minutely_remaining: int | None = None
    minutely_reset: float | None = None  # epoch seconds
    daily_remaining: int | None = None
    daily_reset: float | None = None
    blocked_until: float | None = None  # set after a 429, honoured by every worker

    def daily_exhausted(self, now: float) -> bool:
        return self.daily_remaining is not None and self.daily_remaining <= 0 and (self.daily_reset or 0) > now

    def wait_until(self, now: float) -> float | None:
        """When the next request may go out, or None when it may go now."""
        moments = []
        if self.minutely_remaining is not None and self.minutely_remaining <= 0 and self.minutely_reset:
            moments.append(self.minutely_reset)
        if self.blocked_until:
            moments.append(self.blocked_until)
        later = [m for m in moments if m > now]
        return max(later) if later else None


def parse_reset(value: str | None) -> float | None:
    """Epoch seconds from a reset header: milliseconds per Exact's docs; small values are taken as seconds."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    if number is None or number <= 0:
        return None
    return number / 1000.0 if number > 1e11 else number


def parse_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class RateGate:
    def __init__(self, redis_client: redis.Redis[Any], key_prefix: str, clock: Clock, *, max_waits: int = 3) -> None:
        self._redis = redis_client
        self._prefix = key_prefix
        self._clock = clock
        self._max_waits = max_waits

    def key(self, division: str) -> str:
        return f"{self._prefix}:rate:{division}"

    def status(self, division: str) -> RateState:
        try:
            raw = self._redis.hgetall(self.key(division))
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"rate gate: Redis unavailable ({exc})") from None
        values = {_text(k): _text(v) for k, v in raw.items()}
        return RateState(
            minutely_remaining=parse_int(values.get("minutely_remaining")),
            minutely_reset=_float(values.get("minutely_reset")),
            daily_remaining=parse_int(values.get("daily_remaining")),
            daily_reset=_float(values.get("daily_reset")),
            blocked_until=_float(values.get("blocked_until")),
        )

    def before_request(self, division: str) -> None:
        """Wait until `division` may be called; RateLimitedError when the day's budget is spent."""
        for _ in range(self._max_waits):
            state = self.status(division)
            now = self._clock.now()
            if state.daily_exhausted(now):
                assert state.daily_reset is not None
                raise RateLimitedError(f"daily Exact API budget of division {division} is spent", state.daily_reset)
            until = state.wait_until(now)
            if until is None:
                return
            if until - now > MAX_WAIT_SECONDS:
                raise RateLimitedError(f"division {division} is rate limited until {until:.0f}", until)
            log.info("ratelimit.wait", division=division, seconds=round(until - now, 3))
            self._clock.sleep(until - now)

    def observe(self, division: str, status_code: int, headers: Mapping[str, str]) -> None:
        """Record what a response tells about the budgets; after a 429 block every worker until the reset."""
        now = self._clock.now()
        update: dict[str, str] = {}
        minutely_remaining = parse_int(headers.get("X-RateLimit-Minutely-Remaining"))
        minutely_reset = parse_reset(headers.get("X-RateLimit-Minutely-Reset"))
        daily_remaining = parse_int(headers.get("X-RateLimit-Remaining"))
        daily_reset = parse_reset(headers.get("X-RateLimit-Reset"))
        for name, value in (
            ("minutely_remaining", minutely_remaining),
            ("minutely_reset", minutely_reset),
            ("daily_remaining", daily_remaining),
            ("daily_reset", daily_reset),
        ):
            if value is not None:
                update[name] = str(value)
        if status_code == 429:
            if minutely_reset is not None and minutely_reset > now:
                blocked_until = minutely_reset
            elif daily_remaining is not None and daily_remaining <= 0 and daily_reset is not None:
                blocked_until = None  # before_request raises RateLimitedError for the day
            else:
                # No usable headers: wait for the next whole minute.
                blocked_until = float(math.floor(now / 60.0) + 1) * 60.0
            if blocked_until is not None:
                update["blocked_until"] = str(blocked_until)
            log.info("ratelimit.429", division=division, blocked_until=blocked_until)
        if not update:
            return
        key = self.key(division)
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=update)  # type: ignore[arg-type]
                pipe.expire(key, STATE_TTL_SECONDS)
                pipe.execute()
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"rate gate: Redis unavailable ({exc})") from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
