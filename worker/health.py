"""Health of each part: readiness of `serve` (database, Redis, broker, migrations), a worker answering, beat ticking.

The probes behind `/ready`, `exact-sync health worker|beat` (compose and Kubernetes healthchecks) and `doctor`.

- A worker is healthy when it answers a Celery `ping` addressed to its own node name (WORKER_NODE_NAME, default
  `celery@<hostname>`, which `exact-sync worker` runs as): the main process answers even while prefork children sync.
- Beat writes a heartbeat `{prefix}:beat-heartbeat:<hostname>` on every tick, leader or standby; it is healthy while
  its heartbeat is younger than the leader lock's TTL. A standby beat is healthy too: it takes over when the
  leader's lock runs out. Whether *some* beat leads is a separate question (`leader_held`, asked by `doctor`).
"""

from __future__ import annotations

import json
import math
import socket
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from celery import Celery
from celery.utils.nodenames import host_format
from redis.exceptions import RedisError
from sqlalchemy import Engine

from models.migrate import alembic_config
from syncs.core.settings import Settings

log = structlog.get_logger(__name__)


def worker_node(pattern: str) -> str:
    """A node name pattern (WORKER_NODE_NAME, default celery@%h) with %h, %n, %d expanded as Celery does."""
    return str(host_format(pattern))


def ping_worker(app: Celery, node: str | None = None, timeout: float = 2.0) -> list[str]:
    """The names of the workers that answered a ping (only `node` when given, else any worker)."""
    destination = [node] if node else None
    replies: list[dict[str, Any]] = app.control.ping(destination=destination, timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)


def broker_reachable(app: Celery) -> None:
    """Raises when the broker cannot be reached (one attempt)."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)


@dataclass(frozen=True)
class MigrationLevel:
    current: str | None
    head: str | None

    @property
    def at_head(self) -> bool:
        return self.current is not None and self.current == self.head


def migration_level(engine: Engine, database_url: str) -> MigrationLevel:
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return MigrationLevel(current, head)


def beat_lock_ttl(settings: Settings) -> float:
    """The leader lock's TTL: a beat that has not ticked for this long has lost (or would lose) the lead."""
    return max(30.0, 6 * max(0.1, settings.beat_tick_seconds))


def heartbeat_key(prefix: str, host: str) -> str:
    return f"{prefix}:beat-heartbeat:{host}"


def leader_key(prefix: str) -> str:
    return f"{prefix}:beat-lock"


@dataclass(frozen=True)
class Heartbeat:
    host: str
    at: float  # epoch seconds of the beat's last tick
    leader: bool  # it held the leader lock at that tick


class BeatHeartbeat:
    """Written by the scheduler on each tick; a failure to write is logged, never stops beat."""

    def __init__(self, client: redis.Redis[Any], prefix: str, ttl: float, host: str | None = None) -> None:
        self._redis = client
        self._key = heartbeat_key(prefix, host or socket.gethostname())
        self._ttl = math.ceil(ttl)

    def beat(self, now: float, leader: bool) -> None:
        try:
            self._redis.set(self._key, json.dumps({"at": now, "leader": leader}), ex=self._ttl)
        except (RedisError, OSError) as exc:
            log.warning("beat.heartbeat_failed", error=f"{type(exc).__name__}: {exc}")


def read_heartbeat(client: redis.Redis[Any], prefix: str, host: str | None = None) -> Heartbeat | None:
    host = host or socket.gethostname()
    raw = client.get(heartbeat_key(prefix, host))
    if raw is None:
        return None
    data = json.loads(raw)
    return Heartbeat(host, float(data["at"]), bool(data["leader"]))


def leader_held(client: redis.Redis[Any], prefix: str) -> bool:
    return bool(client.exists(leader_key(prefix)))
