"""One sync of one connection, in three steps that the CLI's `run` chains in process and the Celery tasks spread
over workers (see worker.tasks):

1. `plan_run`, under the connection's advisory lock: check the connection, record the run (`sync_runs`), re-read
   the division list when due; the divisions to sync.
2. `sync_one_division`, under that division's advisory lock (per connection and division): its streams, pages
   prefetched one ahead, the lock checked before each page commit (worker.locks). Divisions of one connection run
   in parallel on several workers, each within its own rate budget.
3. `finish_run`: add the divisions' outcomes up and record the run's result.

A run is `skipped` when the connection is being planned or one of its divisions is being synced by another run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, SyncRun
from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.db import session_factory
from syncs.core.errors import (
    ConfigurationError,
    ConnectionInactiveError,
    ErrorBudgetExhaustedError,
    ExactRequestError,
    ExactSyncError,
    RateLimitedError,
    ReauthRequiredError,
)
from syncs.core.settings import Settings
from syncs.engine.cadence import schedule_for
from syncs.engine.prefetch import PrefetchingSource
from syncs.engine.streams import sync_division
from syncs.entities.registry import DEFAULT_ENTITIES, ENTITIES
from syncs.exact.client import ExactClient, open_client
from syncs.lifecycle.connections import get_connection_by_name
from syncs.lifecycle.divisions import division_unavailable, divisions_to_sync, mark_synced, mark_unavailable
from worker.after_run import after_run
from worker.locks import advisory_lock, any_division_locked, connection_lock, division_key, guard_commits
from worker.outgoing import feed_mark

log = structlog.get_logger(__name__)

Progress = Callable[[str, int], None]

MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class RunOutcome:
    """What a run did. `status`: succeeded, failed, or skipped (the connection was already syncing)."""

    connection: str
    status: str
    run_id: int | None = None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    api_calls: int = 0
    divisions: tuple[int, ...] = ()
    error: str | None = None
    # Divisions Exact refused (403 NoDivisionAccess, DivisionBlocked): marked unavailable, the run went on.
    skipped_divisions: tuple[int, ...] = ()
    # Per stream: {"accounts": {"inserted": .., "updated": .., "deleted": ..}, ..., "deleted": {...}}
    rows_by_entity: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["divisions"] = list(self.divisions)
        data["skipped_divisions"] = list(self.skipped_divisions)
        return data


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
    # True for a run without named entities or `full`: each division reads only the entities due by their cadence.
    scheduled: bool = False
    trigger: str = "task"
    since: int = 0  # the change feed's mark at the run's start (outgoing webhooks)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPlan:
        return cls(**data)


@dataclass(frozen=True)
class DivisionOutcome:
    """One division of a run. `status`: succeeded, unavailable (Exact refused it), skipped (another run holds it),
    or failed (with `error`)."""

    division: int
    status: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    api_calls: int = 0
    error: str | None = None
    rows_by_entity: dict[str, dict[str, int]] = field(default_factory=dict)  # as in RunOutcome

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DivisionOutcome:
        return cls(**data)


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


def _client(settings: Settings, connection_id: int, region: str, clock: Clock) -> tuple[ExactClient, Any]:
    redis_client = redis.Redis.from_url(settings.redis_url)
    sessions = session_factory(settings.database_url)
    client = open_client(settings, connection_id, region, sessions=sessions, redis=redis_client, clock=clock)
    return client, redis_client


def execute_sync(
    settings: Settings,
    connection_name: str,
    entities: Sequence[str] | None = None,
    full: bool = False,
    trigger: str = "cli",
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
    divisions: Sequence[int] | None = None,
) -> RunOutcome:
    """Sync one connection's divisions (only those of `divisions` when given, as a webhook's targeted sync asks)
    one after another in this process, holding the connection's lock throughout; errors are recorded on the run,
    then re-raised."""
    names = resolve_entities(entities)
    sessions = session_factory(settings.database_url)
    connection_id, _ = active_connection(sessions, connection_name)
    with connection_lock(settings.database_url, connection_id) as lock:
        if lock is None or any_division_locked(sessions, connection_id):
            return skipped_outcome(connection_name)
        scheduled = not entities and not full
        plan = plan_run(settings, connection_name, names, full, trigger, clock, scheduled=scheduled, only=divisions)
        outcomes = []
        calls = plan.api_calls
        try:
            for division in plan.divisions:
                outcome = sync_one_division(settings, plan, division, progress=progress, clock=clock)
                calls += outcome.api_calls
                outcomes.append(outcome)
        except DivisionFailed as failed:
            _fail_run(sessions, plan.run_id, connection_id, failed.error, calls + failed.api_calls, clock)
            log.warning("sync.failed", connection=connection_name, run_id=plan.run_id, error=_describe(failed.error))
            raise failed.error from None
        return finish_run(settings, plan, outcomes, clock)


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
) -> RunPlan:
    """Record the run and list the divisions to sync (those of `only` when given); call it holding the connection's
    lock. A `scheduled` run keeps only the connection's enabled entities (syncs.engine.cadence); each division then
    reads those due."""
    sessions = session_factory(settings.database_url)
    connection_id, region = active_connection(sessions, connection_name)
    if scheduled:
        with sessions() as session:
            enabled = schedule_for(session, connection_id, to_datetime(clock.now())).intervals
        entities = [name for name in entities if name in enabled]
    run_id = _start_run(sessions, connection_id, entities, full, trigger, clock)
    since = feed_mark(sessions)  # the changes after it are this run's (outgoing webhooks)
    log.info("sync.started", connection=connection_name, run_id=run_id, entities=entities, full=full)
    client, redis_client = _client(settings, connection_id, region, clock)
    try:
        with client:
            divisions = divisions_to_sync(sessions, connection_id, client, clock, settings.divisions_check_hours)
            if only is not None:
                divisions = [division for division in divisions if division in only]
    except BaseException as exc:
        _fail_run(sessions, run_id, connection_id, exc, client.api_calls, clock)
        log.warning("sync.failed", connection=connection_name, run_id=run_id, error=_describe(exc))
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
        scheduled,
        trigger,
        since,
    )


class DivisionFailed(Exception):
    """A division's sync failed with `error` after spending `api_calls`."""

    def __init__(self, error: BaseException, api_calls: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.api_calls = api_calls


def sync_one_division(
    settings: Settings,
    plan: RunPlan,
    division: int,
    *,
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> DivisionOutcome:
    """Sync one division of a planned run under its lock. Exact refusing the division marks it unavailable;
    any other error is raised as `DivisionFailed` (carrying the error and the calls spent)."""
    sessions = session_factory(settings.database_url)
    with advisory_lock(settings.database_url, division_key(plan.connection_id, division)) as lock:
        if lock is None:
            log.info("sync.division_skipped", connection=plan.connection, division=division, reason="already running")
            return DivisionOutcome(division, "skipped", error="already running")
        guarded = guard_commits(settings.database_url, lock)
        schedule = None
        if plan.scheduled:
            with sessions() as session:
                schedule = schedule_for(session, plan.connection_id, to_datetime(clock.now()))
        client, redis_client = _client(settings, plan.connection_id, plan.region, clock)
        try:
            with client:
                counts = sync_division(
                    guarded,
                    PrefetchingSource(client),
                    plan.connection_id,
                    division,
                    plan.entities,
                    full=plan.full,
                    progress=progress,
                    schedule=schedule,
                )
        except ExactRequestError as exc:
            if not division_unavailable(exc):
                raise DivisionFailed(exc, client.api_calls) from exc
            mark_unavailable(sessions, plan.connection_id, division, str(exc))
            return DivisionOutcome(division, "unavailable", api_calls=client.api_calls, error=str(exc))
        except BaseException as exc:
            raise DivisionFailed(exc, client.api_calls) from exc
        finally:
            redis_client.close()
        mark_synced(sessions, plan.connection_id, division, clock)
        by_entity = {
            name: {"inserted": inserted, "updated": updated, "deleted": deleted}
            for name, (inserted, updated, deleted) in counts.by_stream.items()
        }
        return DivisionOutcome(
            division, "succeeded", counts.inserted, counts.updated, counts.deleted, client.api_calls, None, by_entity
        )


def division_failure(
    settings: Settings, plan: RunPlan, division: int, failed: DivisionFailed, clock: Clock = SYSTEM_CLOCK
) -> DivisionOutcome:
    """The outcome of a division that failed for good; the connection is marked as the error says."""
    _mark_connection(session_factory(settings.database_url), plan.connection_id, failed.error, clock)
    log.warning("sync.division_failed", connection=plan.connection, division=division, error=_describe(failed.error))
    return DivisionOutcome(division, "failed", api_calls=failed.api_calls, error=_describe(failed.error))


def finish_run(
    settings: Settings, plan: RunPlan, outcomes: Iterable[DivisionOutcome], clock: Clock = SYSTEM_CLOCK
) -> RunOutcome:
    """Add the divisions' outcomes up and record the run's result."""
    done = list(outcomes)
    failed = [o for o in done if o.status == "failed"]
    skipped = [o for o in done if o.status == "skipped"]
    error: str | None
    if failed:
        status = "failed"
        error = "; ".join(f"division {o.division}: {o.error}" for o in failed)
    elif skipped and len(skipped) == len(done):
        status, error = "skipped", "already running"
    else:
        status = "succeeded"
        error = "; ".join(f"division {o.division}: skipped, already running" for o in skipped) or None
    outcome = RunOutcome(
        connection=plan.connection,
        status=status,
        run_id=plan.run_id,
        inserted=sum(o.inserted for o in done),
        updated=sum(o.updated for o in done),
        deleted=sum(o.deleted for o in done),
        api_calls=plan.api_calls + sum(o.api_calls for o in done),
        divisions=tuple(o.division for o in done if o.status == "succeeded"),
        error=error,
        skipped_divisions=tuple(o.division for o in done if o.status == "unavailable"),
        rows_by_entity=_sum_by_entity(done),
    )
    sessions = session_factory(settings.database_url)
    _finish_run(sessions, plan.run_id, plan.connection_id, outcome, clock)
    if status == "succeeded":
        after_run(
            settings,
            sessions,
            plan.connection_id,
            plan.run_id,
            plan.entities,
            outcome.divisions,
            plan.since,
            plan.trigger,
        )
    log.info("sync.finished", **outcome.as_dict())
    return outcome


def _sum_by_entity(outcomes: Iterable[DivisionOutcome]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        for name, counts in outcome.rows_by_entity.items():
            into = total.setdefault(name, {"inserted": 0, "updated": 0, "deleted": 0})
            for key, value in counts.items():
                into[key] = into.get(key, 0) + value
    return total


def skipped_outcome(connection_name: str) -> RunOutcome:
    log.info("sync.skipped", connection=connection_name, reason="already running")
    return RunOutcome(connection=connection_name, status="skipped", error="already running")


def _start_run(
    sessions: sessionmaker[Session],
    connection_id: int,
    entities: list[str],
    full: bool,
    trigger: str,
    clock: Clock,
) -> int:
    with sessions.begin() as session:
        # We hold the connection's lock and no division of it is locked: a run still marked running was cut
        # short by a dead process (or its divisions still wait in the queue: then their end corrects its row).
        session.execute(
            update(SyncRun)
            .where(SyncRun.connection_id == connection_id, SyncRun.status == "running")
            .values(status="failed", finished_at=to_datetime(clock.now()), error="interrupted (worker stopped)")
        )
        run = SyncRun(
            connection_id=connection_id,
            entities=entities,
            full=full,
            trigger=trigger,
            status="running",
            started_at=to_datetime(clock.now()),
        )
        session.add(run)
        session.flush()
        return run.id


def _finish_run(
    sessions: sessionmaker[Session], run_id: int, connection_id: int, outcome: RunOutcome, clock: Clock
) -> None:
    finished = to_datetime(clock.now())
    with sessions.begin() as session:
        run = session.get_one(SyncRun, run_id)
        run.status = outcome.status
        run.finished_at = finished
        run.rows_inserted = outcome.inserted
        run.rows_updated = outcome.updated
        run.rows_deleted = outcome.deleted
        run.api_calls = outcome.api_calls
        run.error = outcome.error[:MAX_ERROR_LENGTH] if outcome.error else None
        run.rows_by_entity = outcome.rows_by_entity
        if outcome.status == "succeeded":
            session.get_one(Connection, connection_id).last_sync_at = finished


def _fail_run(
    sessions: sessionmaker[Session],
    run_id: int,
    connection_id: int,
    exc: BaseException,
    api_calls: int,
    clock: Clock,
) -> None:
    """Record why the run failed; never let the bookkeeping hide the original error."""
    try:
        with sessions.begin() as session:
            run = session.get_one(SyncRun, run_id)
            run.status = "failed"
            run.finished_at = to_datetime(clock.now())
            run.api_calls = api_calls
            run.error = _describe(exc)[:MAX_ERROR_LENGTH]
    except Exception as bookkeeping:
        log.error("sync.record_failed", run_id=run_id, error=_describe(bookkeeping))
    _mark_connection(sessions, connection_id, exc, clock)


def _mark_connection(sessions: sessionmaker[Session], connection_id: int, exc: BaseException, clock: Clock) -> None:
    """A dead refresh token needs re-consent; a rate or error budget keeps beat away until it frees up."""
    try:
        with sessions.begin() as session:
            connection = session.get_one(Connection, connection_id)
            if isinstance(exc, ReauthRequiredError) and connection.status == ConnectionStatus.ACTIVE:
                connection.status = ConnectionStatus.REAUTH_REQUIRED
                connection.status_reason = str(exc)[:MAX_ERROR_LENGTH]
            if isinstance(exc, RateLimitedError | ErrorBudgetExhaustedError):
                resume = to_datetime(exc.retry_at)
                if connection.next_sync_at is None or connection.next_sync_at < resume:
                    connection.next_sync_at = resume
    except Exception as bookkeeping:
        log.error("sync.record_failed", connection_id=connection_id, error=_describe(bookkeeping))


def _describe(exc: BaseException) -> str:
    """Messages from syncs.core.errors are written to be shown (they never carry tokens); others get their type."""
    if isinstance(exc, ExactSyncError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted"
    return f"unexpected {type(exc).__name__}: {exc}"
