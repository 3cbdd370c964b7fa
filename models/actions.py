"""The `actions` ledger: one row per write sent to Exact, keyed by (connection, idempotency key)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column


class ActionState(enum.StrEnum):
    REQUESTED = "requested"  # recorded, not sent yet (or sent and known not to have arrived)
    SENT = "sent"  # handed to Exact; no answer yet, or an ambiguous one (timeout, lost connection, 5xx)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # Exact refused it (4xx): sending it again gives the same answer


class ActionRecord(Base):
    __tablename__ = "actions"
    __table_args__ = (UniqueConstraint("connection_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    division: Mapped[int] = mapped_column(Integer)
    payload_hash: Mapped[str] = mapped_column(String(64))  # the same key with another payload is refused
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)  # as sent (marker included)
    marker: Mapped[str | None] = mapped_column(String(200))  # what the action wrote to find the record again
    state: Mapped[ActionState] = mapped_column(
        Enum(ActionState, name="action_state", values_callable=lambda e: [m.value for m in e])
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times it was sent to Exact
    record_key: Mapped[str | None] = mapped_column(String(64))  # Exact's key of the record written
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # the result returned (or Exact's error)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
