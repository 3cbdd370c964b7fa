"""Beat scheduling from the `connections` table, so adding or changing a connection needs no beat restart.

Two safeguards against double scheduling, either of which suffices on its own:
1. A claim in Postgres: a due connection is sent only after one atomic conditional UPDATE moved its
   `next_sync_at` past now. Of two beats racing, the second UPDATE waits for the first's row lock,
   re-checks the condition on the new row version and finds nothing due.
2. A Redis leader lock (`{prefix}:beat-lock`, redbeat-style) refreshed every tick with a TTL: only one beat at
   a time does anything; if it dies, another takes over once the TTL runs out.

Quota: a claimed connection whose division has less than DAILY_BUDGET_LOW_FRACTION of its daily API budget
left is not sent; its next_sync_at moves to the daily reset plus DAILY_BUDGET_DEFER_MARGIN_SECONDS (logged as
beat.deferred). Manual `sync`/`run` still go ahead, with a warning.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
import structlog
from celery import Celery
from celery.beat import Scheduler
from redis.exceptions import LockError, RedisError
from redis.lock import Lock
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from models import Connection
from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.db import session_factory
from syncs.core.settings import Settings, get_settings
from syncs.limits.budgets import low_budget_message, low_daily_budget, synced_divisions
from worker.app import SYNC_TASK
from worker.health import BeatHeartbeat, beat_lock_ttl, leader_key

log = structlog.get_logger(__name__)


# One statement claims every due connection; RETURNING tells us what this beat won.
CLAIM_DUE = text(
    """
    UPDATE connections
       SET next_sync_at = :now + make_interval(mins => sync_interval_minutes)
     WHERE status = 'active' AND NOT paused
       AND (next_sync_at IS NULL OR next_sync_at <= :now)
    RETURNING id, name, sync_interval_minutes
    """
)
# Undo a claim whose message could not be sent: due again at the next tick (unless changed meanwhile).
UNCLAIM = text("UPDATE connections SET next_sync_at = NULL WHERE id = :id AND next_sync_at = :claimed")
DEFER = text("UPDATE connections SET next_sync_at = :until WHERE id = :id")

# Given a claimed connection's id: (epoch when it may sync again, why) when it must wait, else None.
Deferral = Callable[[int], tuple[float, str] | None]


def schedule_due_connections(
    sessions: sessionmaker[Session],
    send: Callable[[str, int], None],
    clock: Clock = SYSTEM_CLOCK,
    defer: Deferral | None = None,
) -> list[str]:
    """Claim every due active connection and `send(name, interval_minutes)` for each; returns the names sent.

    A connection whose send failed is made due again, so the next tick tries again. One that `defer` holds back
    is not sent, and becomes due when `defer` says.
    """
    now = to_datetime(clock.now())
    with sessions.begin() as session:
        claimed = session.execute(CLAIM_DUE, {"now": now}).all()
    sent = []
    for row in sorted(claimed, key=lambda r: r.name):
        deferral = _deferral(defer, row.id, row.name)
        if deferral is not None:
            until, reason = deferral
            with sessions.begin() as session:
                session.execute(DEFER, {"id": row.id, "until": to_datetime(until)})
            log.warning("beat.deferred", connection=row.name, until=to_datetime(until).isoformat(), reason=reason)
            continue
        try:
            send(row.name, row.sync_interval_minutes)
        except Exception as exc:
            log.error("beat.send_failed", connection=row.name, error=f"{type(exc).__name__}: {exc}")
            claimed_at = now + timedelta(minutes=row.sync_interval_minutes)
            with sessions.begin() as session:
                session.execute(UNCLAIM, {"id": row.id, "claimed": claimed_at})
            continue
        sent.append(row.name)
    if sent:
        log.info("beat.scheduled", connections=sent)
    return sent


def daily_budget_deferral(
    sessions: sessionmaker[Session], client: redis.Redis[bytes], settings: Settings, clock: Clock
) -> Deferral:
    """Defers a connection while one of its divisions has little of its daily budget left."""

    def defer(connection_id: int) -> tuple[float, str] | None:
        with sessions() as session:
            divisions = synced_divisions(session, session.get_one(Connection, connection_id))
        low = low_daily_budget(client, settings, clock, divisions)
        if low is None or low.state.daily_reset is None:
            return None
        until = low.state.daily_reset + settings.daily_budget_defer_margin_seconds
        return until, f"daily API budget low: {low_budget_message(low)}"

    return defer


def _deferral(defer: Deferral | None, connection_id: int, name: str) -> tuple[float, str] | None:
    if defer is None:
        return None
    try:
        return defer(connection_id)
    except Exception as exc:  # no budget information (Redis down): send; the run itself will say what is wrong
        log.warning("beat.budget_check_failed", connection=name, error=f"{type(exc).__name__}: {exc}")
        return None


class LeaderLock:
    """A Redis lock that one beat holds while alive: taken without blocking, extended on every tick."""

    def __init__(self, client: redis.Redis[bytes], key: str, ttl: float) -> None:
        self._lock = Lock(client, key, timeout=ttl, blocking=False, thread_local=False)
        self._token = uuid.uuid4().hex.encode()

    def hold(self) -> bool:
        """True when we are (still, or now) the leader."""
        try:
            if self._lock.owned():
                self._lock.reacquire()
                return True
            return bool(self._lock.acquire(blocking=False, token=self._token))
        except (LockError, RedisError) as exc:
            log.warning("beat.leader_lock_unavailable", error=f"{type(exc).__name__}: {exc}")
            return False

    def release(self) -> None:
        try:
            if self._lock.owned():
                self._lock.release()
        except (LockError, RedisError):
            pass


class ConnectionScheduler(Scheduler):
    """celery beat -S worker.scheduler:ConnectionScheduler. Static `beat_schedule` entries keep working."""

    def __init__(
        self,
        app: Celery,
        *args: Any,
        settings: Settings | None = None,
        clock: Clock = SYSTEM_CLOCK,
        **kwargs: Any,
    ) -> None:
        self.settings = settings or get_settings()
        self.clock = clock
        self.tick_seconds = max(0.1, self.settings.beat_tick_seconds)
        self._sessions = session_factory(self.settings.database_url)
        self._redis: redis.Redis[bytes] = redis.Redis.from_url(self.settings.redis_url)
        self._defer = daily_budget_deferral(self._sessions, self._redis, self.settings, self.clock)
        lock_ttl = beat_lock_ttl(self.settings)
        self._leader = LeaderLock(self._redis, leader_key(self.settings.redis_key_prefix), ttl=lock_ttl)
        # `exact-sync health beat` checks this beat ticks, leader or standby (worker.health).
        self._heartbeat = BeatHeartbeat(self._redis, self.settings.redis_key_prefix, ttl=lock_ttl)
        super().__init__(app, *args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        leader = self._leader.hold()
        self._heartbeat.beat(self.clock.now(), leader)
        if not leader:
            log.debug("beat.standby")
            return self.tick_seconds
        try:
            schedule_due_connections(self._sessions, self._send, self.clock, self._defer)
        except Exception as exc:  # a database hiccup must not stop beat; the next tick retries
            log.error("beat.schedule_failed", error=f"{type(exc).__name__}: {exc}")
        return float(min(super().tick(*args, **kwargs), self.tick_seconds))

    def _send(self, name: str, interval_minutes: int) -> None:
        self.app.send_task(
            SYNC_TASK,
            args=[name],
            kwargs={"trigger": "beat"},
            queue=self.settings.celery_queue,
            # A message older than the interval is superseded by the next one: drop it rather than pile up
            # while workers are down.
            expires=interval_minutes * 60,
        )

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._leader.release()
            self._redis.close()
