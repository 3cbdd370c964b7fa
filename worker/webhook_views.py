"""`status`: each connection's webhook subscriptions and when the last event of each topic arrived."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Connection, WebhookEvent, WebhookSubscription
from worker.views import when


def webhook_table(session: Session, name: str | None) -> Table | None:
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
    last = dict(
        ((division, topic), (at, open_count))
        for division, topic, at, open_count in session.execute(
            select(
                WebhookEvent.division,
                WebhookEvent.topic,
                func.max(WebhookEvent.received_at),
                func.count().filter(WebhookEvent.status.in_(("received", "queued"))),
            ).group_by(WebhookEvent.division, WebhookEvent.topic)
        ).all()
    )
    table = Table(title="Webhooks")
    for column in ("connection", "division", "topic", "callback URL", "last event", "waiting"):
        table.add_column(column)
    for connection_name, sub in rows:
        at, waiting = last.get((sub.division, sub.topic), (None, 0))
        table.add_row(
            connection_name, str(sub.division), sub.topic, sub.callback_url, when(at), str(waiting) if waiting else "-"
        )
    return table
