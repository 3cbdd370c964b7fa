"""Beat scheduling from the `connections` table, so adding or changing a connection needs no beat restart.

Two safeguards against double scheduling, either of which suffices on its own:
1. A claim in Postgres: a due connection is sent only after one atomic conditional UPDATE moved its
   `next_sync_at` past now. Of two beats racing, the second UPDATE waits for the first's row lock,
   re-checks the condition on the new row version and finds nothing due.
2. A Redis leader lock (`{prefix}:beat-lock`, redbeat-style) refreshed every tick with a TTL: only one beat at
   a time does anything; if it dies, another takes over once the TTL runs out.

Scale: one tick that finds 10,000 connections due claims them in one statement (through the partial index on
`next_sync_at` of active, unpaused connections), checks their budgets in one query and one Redis round trip, finds
which of them have webhook subscriptions in one query per batch (only those need their polling plan), and
publishes their messages in batches, one broker transaction each over a pooled connection (worker.publish).

Quota: a claimed connection whose division has less than DAILY_BUDGET_LOW_FRACTION of its daily API budget
left is not sent; its next_sync_at moves to the daily reset plus DAILY_BUDGET_DEFER_MARGIN_SECONDS (logged as
beat.deferred). Manual `sync`/`run` still go ahead, with a warning.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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

from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.db import session_factory
from syncs.core.settings import Settings, get_settings
from syncs.limits.budgets import low_budget_message, low_daily_budgets, synced_divisions_of
from worker.app import SYNC_TASK
from worker.health import BeatHeartbeat, beat_lock_ttl, leader_key
from worker.polling import beat_plan, subscribed_connections
from worker.publish import TaskCall, publish_many

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
# Undo claims whose messages could not be sent: due again at the next tick (unless changed meanwhile).
UNCLAIM = text("UPDATE connections SET next_sync_at = NULL WHERE id = :id AND next_sync_at = :claimed")
DEFER = text("UPDATE connections SET next_sync_at = :until WHERE id = :id")
SEND_BATCH = 1000  # messages per broker transaction


@dataclass(frozen=True)
class Due:
    """A claimed connection whose sync message is to be sent."""

    id: int
    name: str
    interval_minutes: int


# Sends one message per connection, all of them or none (raises).
Send = Callable[[Sequence[Due]], None]
# Given claimed connections' ids: {id: (epoch when it may sync again, why)} for those that must wait.
Deferral = Callable[[Sequence[int]], Mapping[int, tuple[float, str]]]


def schedule_due_connections(
    sessions: sessionmaker[Session],
    send: Send,
    clock: Clock = SYSTEM_CLOCK,
    defer: Deferral | None = None,
) -> list[str]:
    """Claim every due active connection and `send` their messages in batches; returns the names sent.

    The claim is one statement, the budget check one query and one Redis round trip for all, and each batch of
    SEND_BATCH messages one broker transaction. Connections of a batch that failed to send are made due again,
    so the next tick tries again. Those that `defer` holds back are not sent, and become due when `defer` says.
    """
    now = to_datetime(clock.now())
    with sessions.begin() as session:
        claimed = [Due(row.id, row.name, row.sync_interval_minutes) for row in session.execute(CLAIM_DUE, {"now": now})]
    claimed.sort(key=lambda due: due.name)
    deferred = _deferrals(defer, [due.id for due in claimed])
    if deferred:
        with sessions.begin() as session:
            session.execute(DEFER, [{"id": i, "until": to_datetime(until)} for i, (until, _) in deferred.items()])
        for due in claimed:
            if due.id in deferred:
                until, reason = deferred[due.id]
                log.warning("beat.deferred", connection=due.name, until=to_datetime(until).isoformat(), reason=reason)
    ready = [due for due in claimed if due.id not in deferred]
    sent: list[str] = []
    for first in range(0, len(ready), SEND_BATCH):
        batch = ready[first : first + SEND_BATCH]
        try:
            send(batch)
        except Exception as exc:
            log.error(
                "beat.send_failed", connections=len(batch), first=batch[0].name, error=f"{type(exc).__name__}: {exc}"
            )
            with sessions.begin() as session:
                session.execute(
                    UNCLAIM,
                    [{"id": due.id, "claimed": now + timedelta(minutes=due.interval_minutes)} for due in batch],
                )
            continue
        sent.extend(due.name for due in batch)
    if sent:
        log.info("beat.scheduled", count=len(sent), connections=sent[:20])
    return sent


def daily_budget_deferral(
    sessions: sessionmaker[Session], client: redis.Redis[bytes], settings: Settings, clock: Clock
) -> Deferral:
    """Defers connections while one of their divisions has little of its daily budget left."""

    def defer(connection_ids: Sequence[int]) -> dict[int, tuple[float, str]]:
        if not connection_ids:
            return {}
        with sessions() as session:
            divisions = synced_divisions_of(session, connection_ids)
        deferred = {}
        for connection_id, low in low_daily_budgets(client, settings, clock, divisions).items():
            if low.state.daily_reset is not None:
                until = low.state.daily_reset + settings.daily_budget_defer_margin_seconds
                deferred[connection_id] = (until, f"daily API budget low: {low_budget_message(low)}")
        return deferred

    return defer


def _deferrals(defer: Deferral | None, connection_ids: list[int]) -> Mapping[int, tuple[float, str]]:
    if defer is None or not connection_ids:
        return {}
    try:
        return defer(connection_ids)
    except Exception as exc:  # no budget information (Redis down): send; the runs themselves will say what is wrong
        log.warning("beat.budget_check_failed", error=f"{type(exc).__name__}: {exc}")
        return {}


def send_scheduled(
    app: Celery,
    settings: Settings,
    sessions: sessionmaker[Session],
    client: redis.Redis[bytes],
    batch: Sequence[Due],
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Publish the sync messages of a batch of claimed connections (beat's `Send`). Only connections with webhook
    subscriptions (found in one query for the batch) need their polling plan (worker.polling.beat_plan): the
    entities their webhooks cover, read only as the safety sweep; none at all when nothing is due."""
    subscribed = subscribed_connections(sessions, [due.id for due in batch])
    now = to_datetime(clock.now())
    calls = []
    for due in batch:
        plan = beat_plan(settings, sessions, client, due.name, now) if due.id in subscribed else None
        if plan is not None and plan.idle:
            log.info("beat.covered_by_webhooks", connection=due.name)  # healthy webhooks; no safety sweep due
            continue
        kwargs: dict[str, Any] = {"trigger": "beat"}
        if plan is not None and plan.covered:
            kwargs["covered"] = plan.covered
        # A message older than the interval is superseded by the next one: it expires rather than pile up while
        # workers are down.
        calls.append(TaskCall((due.name,), kwargs, due.interval_minutes * 60.0))
    publish_many(app, SYNC_TASK, settings.celery_queue, calls)


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

    def _send(self, batch: Sequence[Due]) -> None:
        send_scheduled(self.app, self.settings, self._sessions, self._redis, batch, self.clock)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._leader.release()
            self._redis.close()
