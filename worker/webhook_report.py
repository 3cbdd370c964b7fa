"""Each webhook subscription with its last event and how its topic is polled: one read behind `status`, the
dashboard and `/metrics`, so the three never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Connection, WebhookDelivery, WebhookEvent, WebhookSubscription
from syncs.core.settings import Settings
from syncs.webhooks.events import OPEN
from syncs.webhooks.health import Coverage, synced_divisions
from worker.polling import polling_plan


@dataclass(frozen=True)
class SubscriptionReport:
    connection: str
    division: int
    topic: str
    callback_url: str
    last_event: datetime | None  # the newest event of this topic and division, whatever became of it
    waiting: int  # events not yet settled by a sync
    healthy: bool  # polled only as a safety sweep
    polling: str  # why, in words


@dataclass(frozen=True)
class DeliveryCount:
    connection: str
    status: str  # pending, delivered, failed
    deliveries: int


@dataclass(frozen=True)
class EventCount:
    topic: str
    status: str
    events: int


def subscription_reports(
    session: Session, settings: Settings, client: redis.Redis[Any], name: str | None = None
) -> list[SubscriptionReport]:
    """Every subscription (of connection `name`), ordered by connection, division and topic."""
    query = (
        select(Connection.name, WebhookSubscription)
        .join(Connection, Connection.id == WebhookSubscription.connection_id)
        .order_by(Connection.name, WebhookSubscription.division, WebhookSubscription.topic)
    )
    if name is not None:
        query = query.where(Connection.name == name)
    rows = session.execute(query).all()
    if not rows:
        return []
    last = {
        (division, topic): (at, waiting)
        for division, topic, at, waiting in session.execute(
            select(
                WebhookEvent.division,
                WebhookEvent.topic,
                func.max(WebhookEvent.received_at),
                func.count().filter(WebhookEvent.status.in_(OPEN)),
            ).group_by(WebhookEvent.division, WebhookEvent.topic)
        ).all()
    }
    coverages: dict[tuple[int, str], Coverage] = {}  # a topic's coverage is the connection's, whatever the division
    reports = []
    for connection_name, sub in rows:
        at, waiting = last.get((sub.division, sub.topic), (None, 0))
        coverage = coverages.get((sub.connection_id, sub.topic))
        if coverage is None:
            divisions = synced_divisions(session, sub.connection_id)
            coverage = polling_plan(settings, client, sub.connection_id).coverage(session, sub.topic, divisions)
            coverages[sub.connection_id, sub.topic] = coverage
        polling = coverage.reason if coverage.healthy else f"normal cadence: {coverage.reason}"
        reports.append(
            SubscriptionReport(
                connection_name, sub.division, sub.topic, sub.callback_url, at, int(waiting), coverage.healthy, polling
            )
        )
    return reports


def event_counts(session: Session) -> list[EventCount]:
    """Webhook events received, per topic and what became of them (received, queued, synced, ignored)."""
    rows = session.execute(
        select(WebhookEvent.topic, WebhookEvent.status, func.count())
        .group_by(WebhookEvent.topic, WebhookEvent.status)
        .order_by(WebhookEvent.topic, WebhookEvent.status)
    ).all()
    return [EventCount(topic, status, int(count)) for topic, status, count in rows]


def delivery_counts(session: Session) -> list[DeliveryCount]:
    """Outgoing webhook deliveries per connection and status."""
    rows = session.execute(
        select(Connection.name, WebhookDelivery.status, func.count())
        .join(Connection, Connection.id == WebhookDelivery.connection_id)
        .group_by(Connection.name, WebhookDelivery.status)
        .order_by(Connection.name, WebhookDelivery.status)
    ).all()
    return [DeliveryCount(name, status, int(count)) for name, status, count in rows]
