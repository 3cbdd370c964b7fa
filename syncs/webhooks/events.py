"""The `webhook_events` table: record a verified delivery once, find whom it concerns, settle it after a sync."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models import Connection, ConnectionStatus, Division, WebhookEvent
from syncs.webhooks.signature import Delivery
from syncs.webhooks.topics import entities_for

RECEIVED, QUEUED, SYNCED, IGNORED = "received", "queued", "synced", "ignored"
OPEN = (RECEIVED, QUEUED)


@dataclass(frozen=True)
class Target:
    """A debounced sync to schedule: these entities of this connection in this division."""

    connection: str
    division: int
    topic: str


@dataclass(frozen=True)
class Recorded:
    event_id: int | None  # None: a duplicate (replay, or Exact retrying a delivery we already have)
    targets: tuple[Target, ...]
    reason: str | None = None  # why nothing is scheduled for a new event


def _text(content: dict[str, Any], name: str, limit: int) -> str | None:
    value = content.get(name)
    return None if value is None else str(value)[:limit]


def _division(content: dict[str, Any]) -> int | None:
    value = content.get("Division")
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def targets_for(session: Session, division: int, topic: str) -> tuple[Target, ...]:
    """Active connections syncing `division`, when the topic maps to a synced entity."""
    if not entities_for(topic):
        return ()
    names = session.scalars(
        select(Connection.name)
        .join(Division, Division.connection_id == Connection.id)
        .where(Division.code == division, Division.sync_enabled, Connection.status == ConnectionStatus.ACTIVE)
        .order_by(Connection.name)
    )
    return tuple(Target(name, division, topic) for name in names)


def record(session: Session, delivery: Delivery) -> Recorded:
    """Store a verified delivery once (keyed by its signed bytes) with what it concerns, in the caller's
    transaction. Unknown division or topic: stored as ignored, with the reason."""
    content = delivery.content
    topic = _text(content, "Topic", 64) or ""
    division = _division(content)
    targets = targets_for(session, division, topic) if division is not None else ()
    reason = None
    if not targets:
        if division is None:
            reason = "no Division in the event"
        elif not entities_for(topic):
            reason = f"topic {topic!r} maps to no synced entity"
        else:
            reason = f"no active connection syncs division {division}"
    stmt = (
        insert(WebhookEvent)
        .values(
            dedupe_key=hashlib.sha256(delivery.raw_content).hexdigest(),
            topic=topic,
            division=division,
            action=_text(content, "Action", 32),
            record_key=_text(content, "Key", 64),
            event_created_on=_text(content, "EventCreatedOn", 40),
            status=RECEIVED if targets else IGNORED,
            reason=reason,
        )
        .on_conflict_do_nothing(index_elements=[WebhookEvent.dedupe_key])
        .returning(WebhookEvent.id)
    )
    event_id = session.scalar(stmt)
    if event_id is None:
        return Recorded(None, ())
    return Recorded(event_id, targets, reason)


def mark_queued(session: Session, division: int, topic: str) -> None:
    """Open events of (division, topic) now have a sync scheduled."""
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.division == division, WebhookEvent.topic == topic, WebhookEvent.status.in_(OPEN))
        .values(status=QUEUED, queued_at=func.now())
    )


def mark_synced(session: Session, division: int, topic: str, started_at: datetime) -> int:
    """Events of (division, topic) that arrived before a sync started that then succeeded are settled."""
    result = session.execute(
        update(WebhookEvent)
        .where(
            WebhookEvent.division == division,
            WebhookEvent.topic == topic,
            WebhookEvent.status.in_(OPEN),
            WebhookEvent.received_at <= started_at,
        )
        .values(status=SYNCED, synced_at=func.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def stranded(session: Session, now: datetime, requeue_after: timedelta) -> list[tuple[int, str]]:
    """(division, topic) pairs with events the broker never took, or whose scheduled sync never settled them."""
    rows = session.execute(
        select(WebhookEvent.division, WebhookEvent.topic)
        .where(
            (WebhookEvent.status == RECEIVED)
            | ((WebhookEvent.status == QUEUED) & (WebhookEvent.queued_at < now - requeue_after))
        )
        .group_by(WebhookEvent.division, WebhookEvent.topic)
        .order_by(WebhookEvent.division, WebhookEvent.topic)
    ).all()
    return [(int(division), str(topic)) for division, topic in rows if division is not None]
