"""`status`: each connection's webhook subscriptions, the last event per topic, and how its entities are polled."""

from __future__ import annotations

from rich.table import Table

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
