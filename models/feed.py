"""The change feed: one row per committed page (or deletion batch) that changed rows, in commit order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Identity, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column


class Change(Base):
    """`seq` grows in commit order (writers serialise on an advisory lock from their insert to their commit), so a
    client reading `seq > last_seen` never misses a row committed later with a lower number. `committed_at` is
    the writing transaction's `now()`, equal to the `synced_at` of the rows that page inserted or updated."""

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    division: Mapped[int] = mapped_column(Integer)
    entity: Mapped[str] = mapped_column(String(64))  # the stream: an entity name, or "deleted"
    inserted: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[int] = mapped_column(Integer)
    cursor: Mapped[int] = mapped_column(BigInteger)  # highest Exact Timestamp this stream has committed
    committed_at: Mapped[datetime] = created_at_column()
