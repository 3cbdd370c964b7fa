"""Planning a run: check the connection, record the run, read its cadence schedule once, re-read the division
list when due. The plan travels in task messages to every division of the run (worker.tasks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis
import structlog
from sqlalchemy.orm import Session, sessionmaker

from models import ConnectionStatus
from syncs.core.clock import Clock, to_datetime
from syncs.core.db import session_factory
from syncs.core.errors import ConfigurationError, ConnectionInactiveError
from syncs.core.settings import Settings
from syncs.engine.cadence import Schedule, schedule_for
from syncs.entities.registry import DEFAULT_ENTITIES, ENTITIES
from syncs.exact.client import ExactClient, open_client
from syncs.lifecycle.connections import get_connection_by_name
from syncs.lifecycle.divisions import divisions_to_sync
from worker.outgoing import feed_mark
from worker.polling import safety_sweep
from worker.run_records import describe, fail_run, start_run

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """A recorded run and the divisions it syncs (JSON-able: it travels in task messages)."""

    connection: str
    connection_id: int
    region: str
    run_id: int
    entities: list[str]
    full: bool
    divisions: list[int]
    api_calls: int = 0  # spent while planning (the division check)
    # For a run without named entities or `full` (Schedule.as_dict, read once at planning): each division reads
    # only the entities due by their cadence.
    schedule: dict[str, Any] | None = None
    trigger: str = "task"
    since: int = 0  # the change feed's mark at the run's start (outgoing webhooks)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPlan:
        return cls(**data)

    def cadence(self) -> Schedule | None:
        return None if self.schedule is None else Schedule.from_dict(self.schedule)


def resolve_entities(entities: Sequence[str] | None) -> list[str]:
    if not entities:
        return list(DEFAULT_ENTITIES)
    unknown = [name for name in entities if name not in ENTITIES]
    if unknown:
        raise ConfigurationError(
            f"unknown entit{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(ENTITIES)}"
        )
    return list(dict.fromkeys(entities))


def active_connection(sessions: sessionmaker[Session], connection_name: str) -> tuple[int, str]:
    """(id, region) of an active connection; otherwise a clear error."""
    with sessions() as session:
        connection = get_connection_by_name(session, connection_name)
        if connection.status != ConnectionStatus.ACTIVE:
            reason = f": {connection.status_reason}" if connection.status_reason else ""
            raise ConnectionInactiveError(f"connection {connection_name!r} is {connection.status.value}{reason}")
        return connection.id, connection.region


def run_client(settings: Settings, connection_id: int, region: str, clock: Clock) -> tuple[ExactClient, Any]:
    """An Exact client for one step of a run, and the Redis client to close after it."""
    redis_client = redis.Redis.from_url(settings.redis_url)
    sessions = session_factory(settings.database_url)
    client = open_client(settings, connection_id, region, sessions=sessions, redis=redis_client, clock=clock)
    return client, redis_client


def plan_run(
    settings: Settings,
    connection_name: str,
    entities: list[str],
    full: bool,
    trigger: str,
    clock: Clock,
    *,
    scheduled: bool = False,
    only: Sequence[int] | None = None,
    covered: Sequence[str] = (),
) -> RunPlan:
    """Record the run and list the divisions to sync (those of `only` when given); call it holding the connection's
    lock. A `scheduled` run keeps only the connection's enabled entities (syncs.engine.cadence), the `covered`
    ones (healthy webhooks) read only as the safety sweep; each division then reads those due."""
    sessions = session_factory(settings.database_url)
    connection_id, region = active_connection(sessions, connection_name)
    schedule = None
    if scheduled:
        with sessions() as session:
            schedule = schedule_for(session, connection_id, to_datetime(clock.now()))
        if covered:
            schedule = schedule.swept(covered, safety_sweep(settings))
        entities = [name for name in entities if name in schedule.intervals]
    run_id = start_run(sessions, connection_id, entities, full, trigger, clock)
    since = feed_mark(sessions)  # the changes after it are this run's (outgoing webhooks)
    log.info("sync.started", connection=connection_name, run_id=run_id, entities=entities, full=full)
    client, redis_client = run_client(settings, connection_id, region, clock)
    try:
        with client:
            divisions = divisions_to_sync(sessions, connection_id, client, clock, settings.divisions_check_hours)
            if only is not None:
                divisions = [division for division in divisions if division in only]
    except BaseException as exc:
        fail_run(sessions, run_id, connection_id, exc, client.api_calls, clock)
        log.warning("sync.failed", connection=connection_name, run_id=run_id, error=describe(exc))
        raise
    finally:
        redis_client.close()
    return RunPlan(
        connection_name,
        connection_id,
        region,
        run_id,
        entities,
        full,
        divisions,
        client.api_calls,
        None if schedule is None else schedule.as_dict(),
        trigger,
        since,
    )
