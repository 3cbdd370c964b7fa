"""`status`: each connection's webhook subscriptions, the last event per topic, and how its entities are polled."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Connection
from worker.views import when
from worker.webhook_report import SubscriptionReport


def webhook_table(reports: list[SubscriptionReport]) -> Table | None:
    """None when there is no subscription to show."""
    if not reports:
        return None
    table = Table(title="Webhooks")
    for column in ("connection", "division", "topic", "callback URL", "last event", "waiting", "polling"):
        table.add_column(column)
    for report in reports:
        table.add_row(
            report.connection,
            str(report.division),
            report.topic,
            report.callback_url,
            when(report.last_event),
            str(report.waiting) if report.waiting else "-",
            report.polling,
        )
    return table


def auto_subscribe_lines(session: Session, name: str | None) -> list[str]:
    """The last automatic webhook subscription of the connection (of every connection without `name`)."""
    query = select(Connection.name, Connection.webhook_auto_subscribe).where(
        Connection.webhook_auto_subscribe.is_not(None)
    )
    if name is not None:
        query = query.where(Connection.name == name)
    rows = session.execute(query.order_by(Connection.name)).all()
    return [f"automatic webhook subscription of {connection}: {outcome}" for connection, outcome in rows]
