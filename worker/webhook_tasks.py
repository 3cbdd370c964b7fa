"""Celery tasks of the webhook path.

`exact.webhook_sync(connection_name, division, topic)`: the debounced, targeted sync a webhook scheduled: the
topic's entities (and the deletions stream, which every sync runs, so `Delete` actions land too) in that one
division, through the normal run (advisory lock, budgets, run record with trigger "webhook"). It first
releases the debounce key, so an event arriving from now on schedules a sync of its own; when it succeeds,
the events of that division and topic that arrived before it started are marked synced. A connection that is
already syncing makes it retry after the debounce delay (that run may have passed the stream already).

`exact.webhook_retention()` (beat, every 6 hours): deletes settled webhook events and outgoing deliveries older
than WEBHOOK_EVENTS_RETENTION_DAYS / WEBHOOK_DELIVERIES_RETENTION_DAYS (syncs.webhooks.retention).

`exact.webhook_sweep()` (beat, every WEBHOOK_SWEEP_SECONDS): hands events the broker never took (it was down
when they arrived) or whose sync never settled them to the broker again, and likewise outgoing webhook
deliveries that were recorded but never attempted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import Task
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.db import session_factory
from syncs.core.settings import get_settings
from syncs.webhooks.debounce import Debouncer
from syncs.webhooks.events import Target, mark_synced
from syncs.webhooks.retention import delete_settled
from syncs.webhooks.topics import entities_for
from worker.app import WEBHOOK_RETENTION_TASK, WEBHOOK_SWEEP_TASK, WEBHOOK_SYNC_TASK, app
from worker.outgoing import send_deliveries, unsent
from worker.runs import execute_sync
from worker.tasks import SYNC_RETRIES, run_sync
from worker.webhook_dispatch import Dispatcher, redis_for_webhooks

log = structlog.get_logger(__name__)

BUSY_MAX_RETRIES = 40  # the connection is syncing already: wait for that run, a debounce delay at a time


@app.task(name=WEBHOOK_SYNC_TASK, bind=True, **SYNC_RETRIES)
def webhook_sync(self: Task[Any, Any], connection_name: str, division: int, topic: str) -> dict[str, Any]:
    settings = get_settings()
    client = redis_for_webhooks(settings)
    try:
        Debouncer(client, settings.redis_key_prefix, settings.webhook_debounce_seconds).started(
            Target(connection_name, division, topic)
        )
    finally:
        client.close()
    sessions = session_factory(settings.database_url)
    started_at = database_now(sessions)  # the database's clock, as the events' received_at
    outcome = run_sync(
        self,
        connection_name,
        lambda: execute_sync(
            settings, connection_name, entities=entities_for(topic), divisions=[division], trigger="webhook"
        ),
    )
    if isinstance(outcome, dict):
        return outcome  # failed for good: the events stay open, and the sweeper tries again later
    if outcome.status == "skipped":
        log.info("webhook.sync_busy", connection=connection_name, division=division, topic=topic)
        raise self.retry(countdown=settings.webhook_debounce_seconds, max_retries=BUSY_MAX_RETRIES)
    with sessions.begin() as session:
        settled = mark_synced(session, division, topic, started_at)
    log.info("webhook.synced", connection=connection_name, division=division, topic=topic, events=settled)
    return {**outcome.as_dict(), "events": settled}


@app.task(name=WEBHOOK_SWEEP_TASK, bind=True)
def webhook_sweep(self: Task[Any, Any]) -> int:
    settings = get_settings()
    client = redis_for_webhooks(settings)
    sessions = session_factory(settings.database_url)
    try:
        handed = Dispatcher(settings, self.app, client).sweep(sessions)
    finally:
        client.close()
    with sessions() as session:
        stranded = unsent(session, settings.webhook_sweep_seconds)
    send_deliveries(self.app, settings, stranded)
    return handed


@app.task(name=WEBHOOK_RETENTION_TASK)
def webhook_retention() -> dict[str, int]:
    settings = get_settings()
    sessions = session_factory(settings.database_url)
    deleted = delete_settled(
        sessions,
        database_now(sessions),  # the database's clock, as the rows' timestamps
        timedelta(days=settings.webhook_events_retention_days),
        timedelta(days=settings.webhook_deliveries_retention_days),
    )
    log.info("webhook.retention", events=deleted.events, deliveries=deleted.deliveries)
    return {"events": deleted.events, "deliveries": deleted.deliveries}


def database_now(sessions: sessionmaker[Session]) -> datetime:
    with sessions() as session:
        now: datetime | None = session.scalar(select(func.now()))
    assert now is not None
    return now
