"""One sync of one connection, in three steps that the CLI's `run` chains in process and the Celery tasks spread
over workers (see worker.tasks):

1. `plan_run` (worker.run_plan), under the connection's advisory lock: check the connection, record the run
   (`sync_runs`), read the cadence schedule, re-read the division list when due; the divisions to sync.
2. `sync_one_division`, under that division's advisory lock (per connection and division): its streams, pages
   fetched and prepared ahead on threads of their own (syncs.engine.pipeline), the lock checked before each page
   commit (worker.locks). Divisions of one connection run
   in parallel on several workers, each within its own rate budget.
3. `finish_run`: add the divisions' outcomes up and record the run's result (worker.run_records).

A run is `skipped` when the connection is being planned or one of its divisions is being synced by another run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import structlog

from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.db import session_factory
from syncs.core.errors import ExactRequestError
from syncs.core.settings import Settings
from syncs.engine.streams import sync_division
from syncs.lifecycle.divisions import division_unavailable, mark_synced, mark_unavailable
from worker.after_run import after_run
from worker.locks import advisory_lock, any_division_locked, connection_lock, division_key, guard_commits
from worker.run_plan import RunPlan, active_connection, plan_run, resolve_entities, run_client
from worker.run_records import (
    DivisionOutcome,
    RunOutcome,
    describe,
    fail_run,
    mark_connection,
    record_finish,
    skipped_outcome,
    total_outcome,
)

log = structlog.get_logger(__name__)

Progress = Callable[[str, int], None]


def execute_sync(
    settings: Settings,
    connection_name: str,
    entities: Sequence[str] | None = None,
    full: bool = False,
    trigger: str = "cli",
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
    divisions: Sequence[int] | None = None,
    covered: Sequence[str] = (),
) -> RunOutcome:
    """Sync one connection's divisions (only those of `divisions` when given, as a webhook's targeted sync asks)
    one after another in this process, holding the connection's lock throughout; errors are recorded on the run,
    then re-raised. A scheduled run reads the `covered` entities only as the safety sweep (worker.polling)."""
    names = resolve_entities(entities)
    sessions = session_factory(settings.database_url)
    connection_id, _ = active_connection(sessions, connection_name)
    with connection_lock(settings.database_url, connection_id) as lock:
        if lock is None or any_division_locked(sessions, connection_id):
            return skipped_outcome(connection_name)
        scheduled = not entities and not full
        plan = plan_run(
            settings, connection_name, names, full, trigger, clock, scheduled=scheduled, only=divisions, covered=covered
        )
        outcomes = []
        calls = plan.api_calls
        try:
            for division in plan.divisions:
                outcome = sync_one_division(settings, plan, division, progress=progress, clock=clock)
                calls += outcome.api_calls
                outcomes.append(outcome)
        except DivisionFailed as failed:
            fail_run(sessions, plan.run_id, connection_id, failed.error, calls + failed.api_calls, clock)
            log.warning("sync.failed", connection=connection_name, run_id=plan.run_id, error=describe(failed.error))
            raise failed.error from None
        return finish_run(settings, plan, outcomes, clock)


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
    """Sync one division of a planned run under its lock (a scheduled run: the entities due by the plan's
    schedule). Exact refusing the division marks it unavailable; any other error is raised as `DivisionFailed`
    (carrying the error and the calls spent)."""
    sessions = session_factory(settings.database_url)
    with advisory_lock(settings.database_url, division_key(plan.connection_id, division)) as lock:
        if lock is None:
            log.info("sync.division_skipped", connection=plan.connection, division=division, reason="already running")
            return DivisionOutcome(division, "skipped", error="already running")
        guarded = guard_commits(settings.database_url, lock)
        client, redis_client = run_client(settings, plan.connection_id, plan.region, clock)
        try:
            with client:
                counts = sync_division(
                    guarded,
                    client,
                    plan.connection_id,
                    division,
                    plan.entities,
                    full=plan.full,
                    progress=progress,
                    schedule=plan.cadence(),
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
    mark_connection(session_factory(settings.database_url), plan.connection_id, failed.error, clock)
    log.warning("sync.division_failed", connection=plan.connection, division=division, error=describe(failed.error))
    return DivisionOutcome(division, "failed", api_calls=failed.api_calls, error=describe(failed.error))


def finish_run(
    settings: Settings, plan: RunPlan, outcomes: Iterable[DivisionOutcome], clock: Clock = SYSTEM_CLOCK
) -> RunOutcome:
    """Add the divisions' outcomes up and record the run's result."""
    outcome = total_outcome(plan.connection, plan.run_id, plan.api_calls, outcomes)
    sessions = session_factory(settings.database_url)
    record_finish(sessions, plan.run_id, plan.connection_id, outcome, clock)
    if outcome.status == "succeeded":
        after_run(
            settings,
            sessions,
            plan.connection_id,
            plan.run_id,
            [name for name in outcome.rows_by_entity if name in plan.entities],  # the entity streams read
            outcome.divisions,
            plan.since,
            plan.trigger,
        )
    log.info("sync.finished", **outcome.as_dict())
    return outcome
