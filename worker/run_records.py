"""Run bookkeeping: the `sync_runs` row of a run (started, finished, failed), its totals over the divisions, and
what a failure does to the connection (re-consent, or a pause until a budget frees up)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, SyncRun
from syncs.core.clock import Clock, to_datetime
from syncs.core.errors import ErrorBudgetExhaustedError, ExactSyncError, RateLimitedError, ReauthRequiredError

log = structlog.get_logger(__name__)

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


def total_outcome(connection: str, run_id: int, planning_calls: int, outcomes: Iterable[DivisionOutcome]) -> RunOutcome:
    """The run's outcome from its divisions': failed if one failed, skipped if all were, else succeeded."""
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
    return RunOutcome(
        connection=connection,
        status=status,
        run_id=run_id,
        inserted=sum(o.inserted for o in done),
        updated=sum(o.updated for o in done),
        deleted=sum(o.deleted for o in done),
        api_calls=planning_calls + sum(o.api_calls for o in done),
        divisions=tuple(o.division for o in done if o.status == "succeeded"),
        error=error,
        skipped_divisions=tuple(o.division for o in done if o.status == "unavailable"),
        rows_by_entity=_sum_by_entity(done),
    )


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


def start_run(
    sessions: sessionmaker[Session],
    connection_id: int,
    entities: list[str],
    full: bool,
    trigger: str,
    clock: Clock,
) -> int:
    """Insert the run's row (status running); returns its id."""
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


def record_finish(
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


def fail_run(
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
            run.error = describe(exc)[:MAX_ERROR_LENGTH]
    except Exception as bookkeeping:
        log.error("sync.record_failed", run_id=run_id, error=describe(bookkeeping))
    mark_connection(sessions, connection_id, exc, clock)


def mark_connection(sessions: sessionmaker[Session], connection_id: int, exc: BaseException, clock: Clock) -> None:
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
        log.error("sync.record_failed", connection_id=connection_id, error=describe(bookkeeping))


def describe(exc: BaseException) -> str:
    """Messages from syncs.core.errors are written to be shown (they never carry tokens); others get their type."""
    if isinstance(exc, ExactSyncError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted"
    return f"unexpected {type(exc).__name__}: {exc}"
