"""`status`: each connection's webhook subscriptions, the last event per topic, and how its entities are polled."""

from __future__ import annotations

from typing import Any

import redis
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Connection, WebhookEvent, WebhookSubscription
from syncs.core.settings import Settings
from syncs.webhooks.events import OPEN
from syncs.webhooks.health import synced_divisions
from worker.polling import polling_plan
from worker.views import when


def webhook_table(session: Session, name: str | None, settings: Settings, client: redis.Redis[Any]) -> Table | None:
    """None when no connection (of `name`) has a subscription."""
    query = (
        select(Connection.name, WebhookSubscription)
        .join(Connection, Connection.id == WebhookSubscription.connection_id)
        .order_by(Connection.name, WebhookSubscription.division, WebhookSubscription.topic)
    )
    if name is not None:
        query = query.where(Connection.name == name)
    rows = session.execute(query).all()
    if not rows:
        return None
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
    table = Table(title="Webhooks")
    for column in ("connection", "division", "topic", "callback URL", "last event", "waiting", "polling"):
        table.add_column(column)
    for connection_name, sub in rows:
        at, waiting = last.get((sub.division, sub.topic), (None, 0))
        divisions = synced_divisions(session, sub.connection_id)
        coverage = polling_plan(settings, client, sub.connection_id).coverage(session, sub.topic, divisions)
        polling = coverage.reason if coverage.healthy else f"normal cadence: {coverage.reason}"
        table.add_row(
            connection_name,
            str(sub.division),
            sub.topic,
            sub.callback_url,
            when(at),
            str(waiting) if waiting else "-",
            polling,
        )
    return table
