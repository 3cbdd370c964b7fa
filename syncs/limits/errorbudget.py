"""The error budget: stop calling an endpoint before Exact's error limit blocks our app key.

Exact blocks an (app key, user, company, endpoint) for an hour, growing, after 10 error answers
(400/401/403/404) within an hour. We count the same answers per (connection, endpoint) in a Redis sorted set
(scored by when they happened, so the hour slides) and refuse further calls to that endpoint once `stop_at`
(default 8) are in the window: the run fails with ErrorBudgetExhaustedError, and calls resume by themselves
when enough errors have aged out of the hour. The endpoint includes the division
("124132/sync/crm/accounts"), which makes the key per company as Exact's is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import RedisError

from syncs.core.clock import Clock
from syncs.core.errors import ErrorBudgetExhaustedError, LockUnavailableError

COUNTED = frozenset({400, 401, 403, 404})
WINDOW_SECONDS = 3600.0


def endpoint_of(path: str) -> str:
    """/api/v1/124132/sync/CRM/Accounts -> 124132/sync/crm/accounts (no query: filters are not endpoints)."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    return "/".join(parts).lower()


@dataclass(frozen=True)
class EndpointErrors:
    endpoint: str
    errors: int  # within the last hour
    blocked_until: float | None  # when calls may resume; None while under the budget


class ErrorBudget:
    def __init__(
        self, redis_client: redis.Redis[Any], key_prefix: str, clock: Clock, connection_id: int, stop_at: int = 8
    ) -> None:
        self._redis = redis_client
        self._prefix = f"{key_prefix}:errors:{connection_id}:"
        self._clock = clock
        self._stop_at = max(1, stop_at)

    def check(self, endpoint: str) -> None:
        """Raise ErrorBudgetExhaustedError when `endpoint` must not be called for now."""
        found = self.errors(endpoint)
        if found.blocked_until is not None:
            raise ErrorBudgetExhaustedError(
                f"stopped calling {endpoint}: {found.errors} error answers (400/401/403/404) within the last "
                f"hour, and Exact blocks the endpoint after 10; calls resume after {_utc(found.blocked_until)}",
                found.blocked_until,
            )

    def record(self, endpoint: str, status_code: int) -> None:
        if status_code not in COUNTED:
            return
        now = self._clock.now()
        key = self._prefix + endpoint
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {f"{now:.6f}:{uuid.uuid4().hex[:8]}": now})
                pipe.zremrangebyscore(key, "-inf", now - WINDOW_SECONDS)
                pipe.expire(key, int(WINDOW_SECONDS) + 60)
                pipe.execute()
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"error budget: Redis unavailable ({exc})") from None

    def errors(self, endpoint: str) -> EndpointErrors:
        now = self._clock.now()
        try:
            scores = [float(s) for _, s in self._redis.zrangebyscore(
                self._prefix + endpoint, now - WINDOW_SECONDS, "+inf", withscores=True
            )]  # fmt: skip
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"error budget: Redis unavailable ({exc})") from None
        if len(scores) < self._stop_at:
            return EndpointErrors(endpoint, len(scores), None)
        # Under the budget again once all but stop_at - 1 errors have left the hour.
        return EndpointErrors(endpoint, len(scores), sorted(scores)[len(scores) - self._stop_at] + WINDOW_SECONDS)

    def all_errors(self) -> list[EndpointErrors]:
        """Every endpoint of this connection with errors in the last hour (for `status`)."""
        try:
            keys = sorted(_text(k) for k in self._redis.scan_iter(match=self._prefix + "*"))
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"error budget: Redis unavailable ({exc})") from None
        found = [self.errors(key[len(self._prefix) :]) for key in keys]
        return [e for e in found if e.errors]


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
