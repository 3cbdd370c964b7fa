"""Sending outgoing webhooks: deliveries are recorded after a run, then sent by `exact.deliver_webhook`.

Task `exact.deliver_webhook(delivery_id)`: one POST (syncs/feed/outgoing.py); a failure is retried with
exponential backoff and jitter (OUTGOING_WEBHOOK_BACKOFF_SECONDS doubling up to ..._MAX_SECONDS) until
OUTGOING_WEBHOOK_MAX_ATTEMPTS, then the delivery is `failed` (replay it with `exact-sync webhooks replay`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from celery import Celery, Task
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import WebhookDelivery
from syncs.core.db import session_factory
from syncs.core.settings import Settings, configured, get_settings
from syncs.feed.outgoing import PENDING, attempt, feed_position, record_deliveries
from worker.app import DELIVER_WEBHOOK_TASK, app, create_app

log = structlog.get_logger(__name__)


def feed_mark(sessions: sessionmaker[Session]) -> int:
    """Where the change feed stands as a run begins."""
    with sessions() as session:
        return feed_position(session)


def announce_run(
    settings: Settings,
    sessions: sessionmaker[Session],
    connection_id: int,
    run_id: int,
    divisions: Sequence[int],
    after_seq: int,
) -> list[int]:
    """Record the run's outgoing webhooks and hand them to the broker; never fails the run (a delivery the broker
    did not take stays pending for the sweeper)."""
    try:
        with sessions.begin() as session:
            ids = record_deliveries(session, connection_id, run_id, divisions, after_seq)
    except Exception as exc:
        log.error("outgoing.not_recorded", run_id=run_id, error=type(exc).__name__)
        return []
    if ids:
        send_deliveries(create_app(settings), settings, ids)
    return ids


def send_deliveries(celery_app: Celery, settings: Settings, ids: Sequence[int]) -> None:
    try:
        for delivery_id in ids:
            celery_app.send_task(DELIVER_WEBHOOK_TASK, args=[delivery_id], queue=settings.celery_queue, retry=False)
    except Exception as exc:
        log.warning("outgoing.enqueue_failed", deliveries=list(ids), error=type(exc).__name__)


def unsent(session: Session, older_than_seconds: float) -> list[int]:
    """Pending deliveries never attempted for a while: the broker did not take them (the sweeper resends)."""
    return list(
        session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.last_attempt_at.is_(None),
                WebhookDelivery.created_at < func.now() - timedelta(seconds=older_than_seconds),
            )
        )
    )


def backoff(settings: Settings, attempts: int) -> float:
    return random.uniform(0.5, 1.0) * settings.outgoing_webhook_backoff.delay(max(attempts, 1))


@app.task(name=DELIVER_WEBHOOK_TASK, bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self: Task[Any, Any], delivery_id: int) -> dict[str, Any]:
    settings = get_settings()
    secret = configured(settings.outgoing_webhook_secret)
    with session_factory(settings.database_url).begin() as session:
        outcome = attempt(
            session,
            delivery_id,
            secret,
            settings.outgoing_webhook_max_attempts,
            settings.outgoing_webhook_timeout_seconds,
        )
    log.info("outgoing.attempted", delivery_id=delivery_id, status=outcome.status, attempts=outcome.attempts)
    if outcome.status == PENDING:
        raise self.retry(countdown=backoff(settings, outcome.attempts))
    return {"delivery_id": delivery_id, "status": outcome.status, "attempts": outcome.attempts}
