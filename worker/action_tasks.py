"""`exact.action(connection, action, payload, division=None, idempotency_key=None)`: one write or read.

Any Celery client can send it by name. It returns a JSON object (see README "Actions"): on success the result of
`syncs.actions.perform.perform`; `{"state": "invalid", "errors": {field: message}, ...}` for a payload refused
before any call; `{"state": "failed", "error": ...}` when Exact refused it. A retriable failure (a timeout after
sending, our rate budget, Exact unreachable) is retried with the SAME idempotency key (derived keys are
deterministic), so a retry after an ambiguous failure looks the record up before it sends anything again.
"""

from __future__ import annotations

import random
import time
from typing import Any

import structlog
from celery import Task
from sqlalchemy.exc import OperationalError

from syncs.actions.perform import perform
from syncs.actions.validate import ActionValidationError
from syncs.core.errors import FatalError, RateLimitedError, RetriableError
from syncs.core.settings import get_settings
from worker.app import ACTION_TASK, app

log = structlog.get_logger(__name__)
MAX_RETRIES = 5


def _summary(state: str, connection: str, action: str, error: str, **more: Any) -> dict[str, Any]:
    return {"state": state, "connection": connection, "action": action, "error": error, **more}


@app.task(name=ACTION_TASK, bind=True, acks_late=True, max_retries=MAX_RETRIES)
def run_action(
    self: Task[Any, Any],
    connection: str,
    action: str,
    payload: Any,
    division: int | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    settings = get_settings()
    try:
        return perform(settings, connection, action, payload, division=division, idempotency_key=idempotency_key)
    except ActionValidationError as exc:
        return _summary("invalid", connection, action, str(exc), errors=exc.errors)
    except FatalError as exc:
        return _summary("failed", connection, action, f"{type(exc).__name__}: {exc}")
    except (RetriableError, OperationalError) as exc:
        if self.request.retries >= MAX_RETRIES:
            return _summary("failed", connection, action, f"{type(exc).__name__}: {exc} (after {MAX_RETRIES} retries)")
        countdown = settings.action_retry_seconds * 2**self.request.retries * random.uniform(1.0, 1.5)
        if isinstance(exc, RateLimitedError):
            countdown = max(countdown, exc.retry_at - time.time())
        log.info("action.retry", action=action, connection=connection, error=str(exc), countdown=round(countdown, 1))
        raise self.retry(exc=exc, countdown=countdown) from None
