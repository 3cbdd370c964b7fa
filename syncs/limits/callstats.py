"""API calls per division counted in Redis: running totals (Prometheus counters) and per hour (the 24-hour chart).

The budgeted transport records every answer Exact gives, so the counts cover all workers and processes alike.
Counting is best effort: a Redis failure here is logged and never fails the request it counts.

Keys: `{prefix}:calls:total` (hash: `{division}` -> calls, `{division}:429` -> 429 answers) and
`{prefix}:calls:hour:{epoch of the hour}` (hash: `{division}` -> calls), kept for two days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
import structlog
from redis.exceptions import RedisError

from syncs.core.clock import Clock

log = structlog.get_logger(__name__)

HOUR = 3600
KEEP_SECONDS = 48 * HOUR
RATE_LIMITED = ":429"


@dataclass(frozen=True)
class CallTotals:
    calls: int = 0
    rate_limited: int = 0  # answers with status 429


@dataclass(frozen=True)
class HourlyCalls:
    """Calls per division in consecutive hours, oldest first; `hours` are the epoch starts of those hours."""

    hours: list[int]
    calls: dict[str, list[int]]


class CallStats:
    def __init__(self, client: redis.Redis[Any], key_prefix: str, clock: Clock) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._clock = clock

    @property
    def totals_key(self) -> str:
        return f"{self._prefix}:calls:total"

    def hour_key(self, hour: int) -> str:
        return f"{self._prefix}:calls:hour:{hour}"

    def record(self, division: str, status_code: int) -> None:
        hour_key = self.hour_key(_hour_of(self._clock.now()))
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hincrby(self.totals_key, division, 1)
            if status_code == 429:
                pipe.hincrby(self.totals_key, division + RATE_LIMITED, 1)
            pipe.hincrby(hour_key, division, 1)
            pipe.expire(hour_key, KEEP_SECONDS)
            pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("callstats.record_failed", division=division, error=f"{type(exc).__name__}: {exc}")

    def totals(self) -> dict[str, CallTotals]:
        """Calls and 429s per division since the counters began (raises RedisError when Redis is down)."""
        raw = {_text(k): int(v) for k, v in self._redis.hgetall(self.totals_key).items()}
        divisions = {key.removesuffix(RATE_LIMITED) for key in raw}
        return {d: CallTotals(raw.get(d, 0), raw.get(d + RATE_LIMITED, 0)) for d in sorted(divisions)}

    def hourly(self, hours: int = 24) -> HourlyCalls:
        """The last `hours` hours, the current one included (raises RedisError when Redis is down)."""
        current = _hour_of(self._clock.now())
        starts = [current - HOUR * back for back in range(hours - 1, -1, -1)]
        pipe = self._redis.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(self.hour_key(start))
        calls: dict[str, list[int]] = {}
        for index, found in enumerate(pipe.execute()):
            for division, count in found.items():
                calls.setdefault(_text(division), [0] * hours)[index] = int(count)
        return HourlyCalls(starts, dict(sorted(calls.items())))


def _hour_of(epoch: float) -> int:
    return int(epoch // HOUR) * HOUR


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
