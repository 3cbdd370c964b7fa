"""Celery tasks. Thin on purpose: the work is in worker.runs (with worker.run_plan and worker.run_records), whose
steps the CLI's `run` chains in process.

`exact.sync_connection(connection_name, entities=None, full=False, trigger="task")` plans the run under the
connection's lock (worker.run_plan.plan_run), then replaces itself with a chord: one `exact.sync_division` task per
division (so several workers sync one connection's divisions at once, each under its division's lock and within
that division's rate budget), whose outcomes `exact.finish_run` adds up. The chord's result is stored under the
`exact.sync_connection` task's id (Celery's `Task.replace`), so `result.get()` and `sync NAME --wait` report the
whole connection; no task ever waits for another.

- Idempotent: a sync resumes from committed cursors, and a duplicate delivery finds the connection's or the
  division's advisory lock taken and returns status "skipped". That makes `acks_late` (redelivery after a worker
  dies) safe: a redelivered division task resumes its division, and the chord still ends.
- Returns a JSON-able summary for every outcome it does not retry: status succeeded / skipped / failed.
- Planning and each division retry on their own: `RetriableError` (a lost lock included) is retried with
  exponential backoff and full jitter, at most `MAX_RETRIES` times; so is SQLAlchemy's `OperationalError`
  (Postgres restarted or unreachable mid-run: the next attempt resumes from the committed cursors);
  `RateLimitedError` waits until its `retry_at` instead (unless that is further away than is safe with the
  broker's visibility timeout: then that part fails and beat picks the connection up after `retry_at`).
- `FatalError` is never retried: the sync run row says why (per division), and so does the returned summary.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from celery import Task, chord
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import OperationalError

from syncs.core.clock import SYSTEM_CLOCK
from syncs.core.db import session_factory
from syncs.core.errors import FatalError, RateLimitedError, RetriableError
from syncs.core.settings import get_settings
from worker.app import DIVISION_TASK, FINISH_TASK, SYNC_TASK, app
from worker.locks import any_division_locked, connection_lock
from worker.run_plan import RunPlan, active_connection, plan_run, resolve_entities
from worker.run_records import DivisionOutcome, RunOutcome, skipped_outcome
from worker.runs import DivisionFailed, division_failure, finish_run, sync_one_division

log = structlog.get_logger(__name__)

MAX_RETRIES = 5
RATE_LIMIT_MAX_RETRIES = 20


def failure_summary(connection_name: str, error: str) -> dict[str, Any]:
    """The summary of a run that ended in an error the task does not retry (the run row holds the details)."""
    return RunOutcome(connection_name, "failed", error=error).as_dict()


def rate_limit_countdown(retry_at: float, now: float, visibility_timeout: float) -> float | None:
    """Seconds to wait before retrying, or None when the wait is too long to park the message in the broker.

    A retried message waits in the worker unacknowledged; if it waited longer than Redis's visibility timeout,
    Redis would hand it to a second worker as well.
    """
    wait = max(1.0, math.ceil(retry_at - now)) + random.uniform(0, 5)
    return wait if wait < visibility_timeout / 2 else None


# How every task that runs a sync retries (also worker.webhook_tasks).
SYNC_RETRIES: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (RetriableError, OperationalError),
    "dont_autoretry_for": (RateLimitedError,),
    "max_retries": MAX_RETRIES,
    "retry_backoff": get_settings().task_retry_backoff_seconds,
    "retry_backoff_max": get_settings().task_retry_backoff_max_seconds,
    "retry_jitter": True,
}

T = TypeVar("T")


def run_sync(task: Task[Any, Any], connection_name: str, run: Callable[[], T]) -> T | dict[str, Any]:
    """`run()`, with a rate limit retried at its reset and a fatal error turned into the failure summary."""
    settings = get_settings()
    try:
        return run()
    except RateLimitedError as exc:
        countdown = rate_limit_countdown(exc.retry_at, SYSTEM_CLOCK.now(), settings.celery_visibility_timeout_seconds)
        if countdown is None:
            return failure_summary(connection_name, f"{type(exc).__name__}: {exc}")
        log.info("sync.retry_after_rate_limit", connection=connection_name, countdown=round(countdown))
        raise task.retry(exc=exc, countdown=countdown, max_retries=RATE_LIMIT_MAX_RETRIES) from None
    except FatalError as exc:
        return failure_summary(connection_name, f"{type(exc).__name__}: {exc}")


@app.task(name=SYNC_TASK, bind=True, **SYNC_RETRIES)
def sync_connection(
    self: Task[Any, Any],
    connection_name: str,
    entities: list[str] | None = None,
    full: bool = False,
    trigger: str = "task",
    covered: list[str] | None = None,
) -> dict[str, Any]:
    """`covered`: entities of healthy webhook topics, read by a scheduled run only as the safety sweep (beat)."""
    settings = get_settings()

    def plan() -> RunPlan | RunOutcome:
        names = resolve_entities(entities)
        connection_id, _ = active_connection(session_factory(settings.database_url), connection_name)
        with connection_lock(settings.database_url, connection_id) as lock:
            if lock is None or any_division_locked(session_factory(settings.database_url), connection_id):
                return skipped_outcome(connection_name)
            scheduled = not entities and not full
            return plan_run(
                settings,
                connection_name,
                names,
                full,
                trigger,
                SYSTEM_CLOCK,
                scheduled=scheduled,
                covered=covered or (),
            )

    planned = run_sync(self, connection_name, plan)
    if isinstance(planned, dict):
        return planned
    if isinstance(planned, RunOutcome):
        return planned.as_dict()
    if not planned.divisions:
        return finish_run(settings, planned, []).as_dict()
    queue = settings.celery_queue
    header = [sync_division_task.s(planned.as_dict(), division).set(queue=queue) for division in planned.divisions]
    raise self.replace(chord(header, finish_run_task.s(planned.as_dict()).set(queue=queue)))


@app.task(name=DIVISION_TASK, bind=True, acks_late=True)
def sync_division_task(self: Task[Any, Any], plan: dict[str, Any], division: int) -> dict[str, Any]:
    """One division of a planned run; always ends in an outcome (after its retries), so the chord completes."""
    settings = get_settings()
    run = RunPlan.from_dict(plan)
    try:
        return sync_one_division(settings, run, division).as_dict()
    except DivisionFailed as failed:
        error, retries = failed.error, self.request.retries
        if isinstance(error, RateLimitedError):
            now = SYSTEM_CLOCK.now()
            countdown = rate_limit_countdown(error.retry_at, now, settings.celery_visibility_timeout_seconds)
            if countdown is not None and retries < RATE_LIMIT_MAX_RETRIES:
                raise self.retry(countdown=countdown, max_retries=RATE_LIMIT_MAX_RETRIES) from None
        elif isinstance(error, RetriableError | OperationalError) and retries < MAX_RETRIES:
            countdown = get_exponential_backoff_interval(
                settings.task_retry_backoff_seconds, retries, settings.task_retry_backoff_max_seconds, full_jitter=True
            )
            log.info("sync.division_retry", division=division, countdown=countdown, error=str(error))
            raise self.retry(countdown=countdown, max_retries=MAX_RETRIES) from None
        return division_failure(settings, run, division, failed).as_dict()


@app.task(name=FINISH_TASK, acks_late=True)
def finish_run_task(outcomes: list[dict[str, Any]], plan: dict[str, Any]) -> dict[str, Any]:
    """The chord's end: the run's result, as `exact.sync_connection` reports it."""
    done = [DivisionOutcome.from_dict(outcome) for outcome in outcomes]
    return finish_run(get_settings(), RunPlan.from_dict(plan), done).as_dict()
