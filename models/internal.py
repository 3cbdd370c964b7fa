"""exact-sync's own bookkeeping: connections, their encrypted tokens, divisions, cursors and runs."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, Integer, LargeBinary, String, Text, false, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column


class ConnectionStatus(enum.StrEnum):
    ACTIVE = "active"
    REAUTH_REQUIRED = "reauth_required"
    DISABLED = "disabled"


class Connection(Base):
    __tablename__ = "connections"
    # Beat claims due connections through this partial index: paused and inactive connections keep an old
    # next_sync_at forever, and would otherwise be read (and filtered out) at every tick.
    __table_args__ = (
        Index("ix_connections_due", "next_sync_at", postgresql_where=text("status = 'active' AND NOT paused")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    region: Mapped[str] = mapped_column(String(10))
    status: Mapped[ConnectionStatus] = mapped_column(
        Enum(ConnectionStatus, name="connection_status", values_callable=lambda e: [m.value for m in e]),
        default=ConnectionStatus.ACTIVE,
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    sync_interval_minutes: Mapped[int] = mapped_column(Integer, default=15)
    # Paused: beat schedules no syncs, but the keep-alive still refreshes its tokens (manual syncs still run).
    paused: Mapped[bool] = mapped_column(default=False, server_default=false())
    next_sync_at: Mapped[datetime | None]
    last_sync_at: Mapped[datetime | None]
    current_division: Mapped[int | None] = mapped_column(Integer)
    # When system/Divisions was last read for this connection (at connect, then daily inside a run).
    divisions_checked_at: Mapped[datetime | None]
    # True once someone chose divisions (`connections divisions --include/--exclude`): divisions found later
    # are then not synced until chosen; False: every active division (Status 1) is synced.
    divisions_chosen: Mapped[bool] = mapped_column(default=False, server_default="false")
    # The export this connection was imported from (its random id): the same file cannot be imported twice.
    import_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The last automatic webhook subscription (WEBHOOK_AUTO_SUBSCRIBE): when, and what came of it (`status`).
    webhook_auto_subscribe: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class ConnectionToken(Base):
    """One encrypted token pair per connection; `received_at` is when the token response arrived here."""

    __tablename__ = "connection_tokens"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    access_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes] = mapped_column(LargeBinary)
    # Keyed hash of the refresh token (syncs.core.crypto): finds a token stored twice without decrypting every row.
    refresh_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    received_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    refresh_token_issued_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_refresh_at: Mapped[datetime | None]
    last_refresh_error: Mapped[str | None] = mapped_column(Text)
    last_refresh_error_at: Mapped[datetime | None]
    # Failed refreshes since the last success (timeouts, 5xx): the next attempt backs off accordingly.
    refresh_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Division(Base):
    __tablename__ = "divisions"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(default=False)
    sync_enabled: Mapped[bool] = mapped_column(default=True)
    available: Mapped[bool] = mapped_column(default=True)
    unavailable_reason: Mapped[str | None] = mapped_column(Text)
    last_synced_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class SyncCursor(Base):
    """Per (connection, division, stream): `timestamp`, below which every row is committed (the next enumeration
    reads `Timestamp gt timestamp`), and the resume point of an enumeration that has not reached its end."""

    __tablename__ = "sync_cursors"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    division: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entity: Mapped[str] = mapped_column(String(64), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, default=0)
    # The unfinished enumeration: the d.__next of its last committed page (where to continue) and the highest
    # Timestamp it committed. Both are NULL once an enumeration ends; `timestamp` then takes the highest.
    resume_url: Mapped[str | None] = mapped_column(Text)
    pending_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    # When a run (that started then) last read this stream to its end, rows or not: the entity's freshness, and
    # what per-entity cadence compares with.
    checked_at: Mapped[datetime | None]


class ConnectionEntity(Base):
    """A connection's choice for one entity: off, or read at its own interval (default: the cadence's)."""

    __tablename__ = "connection_entities"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True, server_default="true")
    every_minutes: Mapped[int | None] = mapped_column(Integer)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    # Finished runs add up in models.ops through a trigger (migration 0011); running ones are counted from here.
    __table_args__ = (Index("ix_sync_runs_running", "connection_id", postgresql_where=text("status = 'running'")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    entities: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    full: Mapped[bool] = mapped_column(default=False)
    trigger: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None]
    rows_inserted: Mapped[int] = mapped_column(default=0)
    rows_updated: Mapped[int] = mapped_column(default=0)
    rows_deleted: Mapped[int] = mapped_column(default=0)
    api_calls: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # Rows per stream of a succeeded run: {"accounts": {"inserted": 3, "updated": 1, "deleted": 0}, ...}
    # ("deleted" is the sync/Deleted stream, which marks rows of every entity).
    rows_by_entity: Mapped[dict[str, dict[str, int]]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class ConnectInvite(Base):
    """A single-use link for `serve`'s /connect, issued by the operator; only a keyed hash of its token is kept."""

    __tablename__ = "connect_invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    name: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
