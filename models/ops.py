"""Running totals of finished runs, kept by a trigger on `sync_runs` (migration 0011) so `/metrics` reads a few
small rows per connection at each scrape, however many runs the table has accumulated.

The trigger fires when a run is recorded finished (inserted finished, or updated from `running`), whatever code
path wrote it, in the same transaction; rows go with their connection (ON DELETE CASCADE).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class SyncRunTotal(Base):
    """Finished runs and their API calls per connection and outcome."""

    __tablename__ = "sync_run_totals"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger, default=0)
    api_calls: Mapped[int] = mapped_column(BigInteger, default=0)


class SyncEntityTotal(Base):
    """Per connection and stream: rows written by succeeded runs, and when the stream last synced successfully."""

    __tablename__ = "sync_entity_totals"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(64), primary_key=True)
    inserted: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted: Mapped[int] = mapped_column(BigInteger, default=0)
    last_success_at: Mapped[datetime | None]
