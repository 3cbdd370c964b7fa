"""Celery tasks. Thin on purpose: all the work is in `worker.runs.execute_sync`, which the CLI's `run` shares.

`exact.sync_connection(connection_name, entities=None, full=False, trigger="task")`

- Idempotent: a sync resumes from committed cursors, and a duplicate delivery finds the connection's advisory
  lock taken and returns status "skipped". That makes `acks_late` (redelivery after a worker dies) safe.
- Returns a JSON-able summary for every outcome it does not retry: status succeeded / skipped / failed.
- `RetriableError` is retried with exponential backoff and full jitter, at most `MAX_RETRIES` times; so is
  SQLAlchemy's `OperationalError` (Postgres restarted or unreachable mid-run: the next attempt resumes from the
  committed cursors);
  `RateLimitedError` waits until its `retry_at` instead (unless that is further away than is safe with the
  broker's visibility timeout: then the run stays failed and beat picks the connection up after `retry_at`).
- `FatalError` is never retried: the sync run row says why, and so does the returned summary.
"""

from __future__ import annotations

import math
import random
from typing import Any

import structlog
from celery import Task
from sqlalchemy.exc import OperationalError

from syncs.core.clock import SYSTEM_CLOCK
from syncs.core.errors import FatalError, RateLimitedError, RetriableError
from syncs.core.settings import get_settings
from worker.app import SYNC_TASK, app
from worker.runs import RunOutcome, execute_sync

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


@app.task(
    name=SYNC_TASK,
    bind=True,
    acks_late=True,
    autoretry_for=(RetriableError, OperationalError),
    dont_autoretry_for=(RateLimitedError,),
    max_retries=MAX_RETRIES,
    retry_backoff=get_settings().task_retry_backoff_seconds,
    retry_backoff_max=get_settings().task_retry_backoff_max_seconds,
    retry_jitter=True,
)
def sync_connection(
    self: Task[Any, Any],
    connection_name: str,
    entities: list[str] | None = None,
    full: bool = False,
    trigger: str = "task",
) -> dict[str, Any]:
    settings = get_settings()
    try:
        outcome = execute_sync(settings, connection_name, entities=entities, full=full, trigger=trigger)
    except RateLimitedError as exc:
        countdown = rate_limit_countdown(exc.retry_at, SYSTEM_CLOCK.now(), settings.celery_visibility_timeout_seconds)
        if countdown is None:
            return failure_summary(connection_name, f"{type(exc).__name__}: {exc}")
        log.info("sync.retry_after_rate_limit", connection=connection_name, countdown=round(countdown))
        raise self.retry(exc=exc, countdown=countdown, max_retries=RATE_LIMIT_MAX_RETRIES) from None
    except FatalError as exc:
        return failure_summary(connection_name, f"{type(exc).__name__}: {exc}")
    return outcome.as_dict()
