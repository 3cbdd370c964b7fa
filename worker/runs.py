"""One sync of one connection: the one function behind both `exact-sync run` (in process) and the Celery task.

Exclusivity comes from a PostgreSQL *session* advisory lock held on a dedicated database connection for the
whole run. Postgres releases it when that connection ends, so a worker killed with `kill -9` never leaves a
stale lock behind (a Redis lock with a TTL would block the connection until the TTL ran out, or expire under a
slow run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
import structlog
from sqlalchemy import Connection as DbConnection
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, SyncRun
from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.db import engine_for, session_factory
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
from syncs.engine.prefetch import PrefetchingSource
from syncs.engine.streams import SyncCounts, sync_division
from syncs.entities.registry import DEFAULT_ENTITIES, ENTITIES
from syncs.exact.client import open_client
from syncs.lifecycle.connections import get_connection_by_name
from syncs.lifecycle.divisions import division_unavailable, divisions_to_sync, mark_synced, mark_unavailable

log = structlog.get_logger(__name__)

Progress = Callable[[str, int], None]

# First key of the two-int advisory lock: "EXAC"; the second is the connection id.
LOCK_NAMESPACE = 0x45584143
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


@contextlib.contextmanager
def connection_lock(settings: Settings, connection_id: int) -> Iterator[bool]:
    """Yields True when this process now holds the connection's advisory lock, False when another does."""
    db = engine_for(settings.database_url).connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        acquired = bool(
            db.scalar(text("SELECT pg_try_advisory_lock(:ns, :id)"), {"ns": LOCK_NAMESPACE, "id": connection_id})
        )
    except BaseException:
        _discard(db)
        raise
    try:
        yield acquired
    finally:
        # No `return` in here: it would swallow the run's own exception (found by a Postgres restart mid-run).
        try:
            if acquired:
                db.execute(text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": LOCK_NAMESPACE, "id": connection_id})
        except Exception:
            # Never hand a connection that may still hold the lock back to the pool: close it instead,
            # which makes Postgres release the lock.
            _discard(db)
        else:
            db.close()


def _discard(db: DbConnection) -> None:
    with contextlib.suppress(Exception):
        db.invalidate()
    with contextlib.suppress(Exception):
        db.close()


def execute_sync(
    settings: Settings,
    connection_name: str,
    entities: Sequence[str] | None = None,
    full: bool = False,
    trigger: str = "cli",
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> RunOutcome:
    """Sync one connection's enabled divisions; errors are recorded on the run, then re-raised."""
    names = resolve_entities(entities)
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        connection = get_connection_by_name(session, connection_name)
        if connection.status != ConnectionStatus.ACTIVE:
            reason = f": {connection.status_reason}" if connection.status_reason else ""
            raise ConnectionInactiveError(f"connection {connection_name!r} is {connection.status.value}{reason}")
        connection_id, region = connection.id, connection.region

    with connection_lock(settings, connection_id) as acquired:
        if not acquired:
            log.info("sync.skipped", connection=connection_name, reason="already running")
            return RunOutcome(connection=connection_name, status="skipped", error="already running")
        run_id = _start_run(sessions, connection_id, names, full, trigger, clock)
        log.info("sync.started", connection=connection_name, run_id=run_id, entities=names, full=full)
        api_calls = 0
        try:
            redis_client = redis.Redis.from_url(settings.redis_url)
            try:
                with open_client(
                    settings, connection_id, region, sessions=sessions, redis=redis_client, clock=clock
                ) as client:
                    try:
                        divisions = divisions_to_sync(
                            sessions, connection_id, client, clock, settings.divisions_check_hours
                        )
                        total = SyncCounts()
                        skipped: list[int] = []
                        for division in divisions:
                            try:
                                counts = sync_division(
                                    sessions,
                                    PrefetchingSource(client),
                                    connection_id,
                                    division,
                                    names,
                                    full=full,
                                    progress=progress,
                                )
                            except ExactRequestError as exc:
                                if not division_unavailable(exc):
                                    raise
                                mark_unavailable(sessions, connection_id, division, str(exc))
                                skipped.append(division)
                                continue
                            mark_synced(sessions, connection_id, division, clock)
                            total += counts
                    finally:
                        api_calls = client.api_calls
            finally:
                redis_client.close()
        except BaseException as exc:
            _fail_run(sessions, run_id, connection_id, exc, api_calls, clock)
            log.warning("sync.failed", connection=connection_name, run_id=run_id, error=_describe(exc))
            raise
        outcome = RunOutcome(
            connection=connection_name,
            status="succeeded",
            run_id=run_id,
            inserted=total.inserted,
            updated=total.updated,
            deleted=total.deleted,
            api_calls=api_calls,
            divisions=tuple(d for d in divisions if d not in skipped),
            skipped_divisions=tuple(skipped),
            rows_by_entity={
                name: {"inserted": inserted, "updated": updated, "deleted": deleted}
                for name, (inserted, updated, deleted) in total.by_stream.items()
            },
        )
        _finish_run(sessions, run_id, connection_id, outcome, clock)
        log.info("sync.succeeded", **outcome.as_dict())
        return outcome


def _start_run(
    sessions: sessionmaker[Session],
    connection_id: int,
    entities: list[str],
    full: bool,
    trigger: str,
    clock: Clock,
) -> int:
    with sessions.begin() as session:
        # We hold the lock, so any run still marked running was cut short by a dead process.
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
        run.rows_by_entity = outcome.rows_by_entity
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
            connection = session.get_one(Connection, connection_id)
            if isinstance(exc, ReauthRequiredError) and connection.status == ConnectionStatus.ACTIVE:
                connection.status = ConnectionStatus.REAUTH_REQUIRED
                connection.status_reason = str(exc)[:MAX_ERROR_LENGTH]
            if isinstance(exc, RateLimitedError | ErrorBudgetExhaustedError):
                # Beat leaves the connection alone until Exact (or our error budget) lets us call again.
                resume = to_datetime(exc.retry_at)
                if connection.next_sync_at is None or connection.next_sync_at < resume:
                    connection.next_sync_at = resume
    except Exception as bookkeeping:
        log.error("sync.record_failed", run_id=run_id, error=_describe(bookkeeping))


def _describe(exc: BaseException) -> str:
    """Messages from syncs.core.errors are written to be shown (they never carry tokens); others get their type."""
    if isinstance(exc, ExactSyncError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted"
    return f"unexpected {type(exc).__name__}: {exc}"
