"""Exact Online webhook events as received, before (and after) the syncs they trigger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column


class WebhookEvent(Base):
    """One verified delivery. `dedupe_key` (SHA-256 of the signed Content bytes) makes a replay or Exact's own
    retry of the same event a no-op. `status`: received (recorded; not yet handed to the broker), queued (a
    debounced sync is scheduled), synced (a sync of its topic in its division started after it arrived and
    succeeded), ignored (no connection syncs that division, or the topic maps to no synced entity: `reason`)."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_open", "status", "division", "topic"),
        Index("ix_webhook_events_topic_received_at", "topic", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(64))
    division: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str | None] = mapped_column(String(32))
    record_key: Mapped[str | None] = mapped_column(String(64))  # Content.Key: the changed record's ID
    event_created_on: Mapped[str | None] = mapped_column(String(40))  # as Exact sent it
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = created_at_column()
    queued_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]


class WebhookSubscription(Base):
    """Our copy of a subscription made at Exact (what `webhooks subscribe` made or `webhooks list` found), so
    `status` and the polling cadence need no API call."""

    __tablename__ = "webhook_subscriptions"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    division: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    exact_id: Mapped[str] = mapped_column(String(64))
    callback_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
