"""Retention of the webhook tables: settled rows of `webhook_events` (synced or ignored) and `webhook_deliveries`
(delivered or failed) older than their retention are deleted, in batches, so neither table grows forever. Open
events and pending deliveries are never touched, whatever their age.

A deleted event's dedupe key goes with it: Exact replaying an event older than the retention is recorded again
(and costs one targeted sync). A failed delivery deleted can no longer be replayed from the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from models import WebhookDelivery, WebhookEvent
from syncs.feed.outgoing import DELIVERED, FAILED
from syncs.webhooks.events import IGNORED, SYNCED

BATCH = 10_000  # rows per delete statement (one transaction each), so a large backlog never holds long locks


@dataclass(frozen=True)
class Deleted:
    events: int
    deliveries: int


def delete_settled(
    sessions: sessionmaker[Session], now: datetime, events_for: timedelta, deliveries_for: timedelta
) -> Deleted:
    """Delete the settled events last touched before `now - events_for` and the settled deliveries last touched
    before `now - deliveries_for`."""
    events = _delete_in_batches(
        sessions,
        WebhookEvent,
        WebhookEvent.status.in_((SYNCED, IGNORED)),
        func.coalesce(WebhookEvent.synced_at, WebhookEvent.received_at) < now - events_for,
    )
    deliveries = _delete_in_batches(
        sessions,
        WebhookDelivery,
        WebhookDelivery.status.in_((DELIVERED, FAILED)),
        func.coalesce(WebhookDelivery.delivered_at, WebhookDelivery.last_attempt_at, WebhookDelivery.created_at)
        < now - deliveries_for,
    )
    return Deleted(events, deliveries)


def _delete_in_batches(
    sessions: sessionmaker[Session], table: type[WebhookEvent] | type[WebhookDelivery], *where: ColumnElement[bool]
) -> int:
    total = 0
    while True:
        batch = select(table.id).where(*where).limit(BATCH).scalar_subquery()
        with sessions.begin() as session:
            gone = len(session.execute(delete(table).where(table.id.in_(batch)).returning(table.id)).all())
        total += gone
        if gone < BATCH:
            return total
