"""Retention: settled webhook events and outgoing deliveries past their retention are deleted (in batches) by a
beat task; open events, pending deliveries and recent rows stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, WebhookDelivery, WebhookEvent
from syncs.core.settings import Settings
from syncs.webhooks import retention
from syncs.webhooks.retention import delete_settled
from worker.app import WEBHOOK_RETENTION_TASK, create_app

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def add_event(session: Session, key: str, status: str, received: datetime, synced: datetime | None = None) -> None:
    session.add(
        WebhookEvent(
            dedupe_key=key, topic="Accounts", division=1, status=status, received_at=received, synced_at=synced
        )
    )


def add_delivery(session: Session, connection_id: int, entity: str, status: str, **when: datetime) -> None:
    session.add(
        WebhookDelivery(
            connection_id=connection_id, entity=entity, url="https://app.example.com/hook", payload="{}",
            status=status, attempts=1, **when,
        )
    )  # fmt: skip


def left(db: sessionmaker[Session]) -> tuple[list[str], list[str]]:
    with db() as session:
        events = session.scalars(select(WebhookEvent.dedupe_key).order_by(WebhookEvent.dedupe_key)).all()
        deliveries = session.scalars(select(WebhookDelivery.entity).order_by(WebhookDelivery.entity)).all()
    return list(events), list(deliveries)


def test_settled_rows_past_their_retention_go_and_the_rest_stay(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches
    old, recent = NOW - 31 * DAY, NOW - 29 * DAY
    with db.begin() as session:
        connection = Connection(name="acme", region="nl")
        session.add(connection)
        session.flush()
        for n in range(3):
            add_event(session, f"old-synced-{n}", "synced", old - DAY, synced=old)
        add_event(session, "old-ignored", "ignored", old)
        add_event(session, "old-queued", "queued", old)  # still waiting for its sync
        add_event(session, "old-received", "received", old)  # the broker never took it
        add_event(session, "recent-synced", "synced", recent, synced=recent)
        add_event(session, "synced-late", "synced", old, synced=recent)  # received long ago, settled recently
        add_delivery(session, connection.id, "old-delivered", "delivered", created_at=old, delivered_at=old)
        add_delivery(session, connection.id, "old-failed", "failed", created_at=old, last_attempt_at=old)
        add_delivery(session, connection.id, "old-pending", "pending", created_at=old)  # still being retried
        add_delivery(session, connection.id, "recent-delivered", "delivered", created_at=old, delivered_at=recent)

    deleted = delete_settled(db, NOW, 30 * DAY, 30 * DAY)

    assert (deleted.events, deleted.deliveries) == (4, 2)
    assert left(db) == (
        ["old-queued", "old-received", "recent-synced", "synced-late"],
        ["old-pending", "recent-delivered"],
    )


def test_each_table_keeps_its_own_retention(db: sessionmaker[Session]) -> None:
    ten_days_ago = NOW - 10 * DAY
    with db.begin() as session:
        connection = Connection(name="acme", region="nl")
        session.add(connection)
        session.flush()
        add_event(session, "event", "synced", ten_days_ago, synced=ten_days_ago)
        add_delivery(
            session, connection.id, "delivery", "delivered", created_at=ten_days_ago, delivered_at=ten_days_ago
        )
    assert delete_settled(db, NOW, 7 * DAY, 30 * DAY).events == 1
    assert left(db) == ([], ["delivery"])


def test_beat_runs_the_retention(settings: Settings) -> None:
    entries = [entry["task"] for entry in create_app(settings).conf.beat_schedule.values()]
    assert WEBHOOK_RETENTION_TASK in entries
