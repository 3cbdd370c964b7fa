"""Connection bookkeeping used by the CLI, the worker and tests: add, find, list, remove, and a status view.

Every function works inside the caller's session; the caller commits (the house rule for transactions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models import Connection, ConnectionStatus, ConnectionToken, Division, SyncCursor, SyncRun
from syncs.core.errors import ConfigurationError
from syncs.core.settings import REGIONS
from syncs.engine.cadence import schedule_for
from syncs.tokens.pair import TokenPair

if TYPE_CHECKING:
    from syncs.tokens.store import TokenStore  # cryptography and Redis: not loaded by `connections list`


def validate_region(region: str) -> str:
    if region not in REGIONS:
        raise ConfigurationError(f"unknown Exact Online region {region!r}; expected one of {', '.join(REGIONS)}")
    return region


NAME_RULE = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_RULE_TEXT = "1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'"


def validate_name(name: str) -> str:
    """The one rule for connection names (CLI, `serve`, import): safe in URLs, file names and terminals."""
    if not NAME_RULE.fullmatch(name):
        raise ConfigurationError(f"invalid connection name {name[:80]!r}: a name is {NAME_RULE_TEXT}")
    return name


def get_connection_by_name(session: Session, name: str) -> Connection:
    connection = session.scalar(select(Connection).where(Connection.name == name))
    if connection is None:
        known = session.scalars(select(Connection.name).order_by(Connection.name)).all()
        hint = f"; known connections: {', '.join(known)}" if known else "; none are registered yet"
        raise ConfigurationError(f"unknown connection {name!r}{hint}")
    return connection


def list_connections(session: Session) -> Sequence[Connection]:
    return session.scalars(select(Connection).order_by(Connection.name)).all()


def ensure_division(session: Session, connection_id: int, code: int, *, is_current: bool) -> None:
    """Upsert a division row; an existing row keeps its sync_enabled/available flags (a person set them)."""
    stmt = insert(Division).values(connection_id=connection_id, code=code, is_current=is_current)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Division.connection_id, Division.code],
            set_={"is_current": stmt.excluded.is_current},
        )
    )
    if is_current:
        # Exact has one current division per user; the flag follows it.
        session.query(Division).filter(
            Division.connection_id == connection_id, Division.code != code, Division.is_current.is_(True)
        ).update({Division.is_current: False}, synchronize_session=False)


def add_connection(
    session: Session,
    store: TokenStore,
    name: str,
    region: str,
    pair: TokenPair,
    division: int | None = None,
    interval: int = 15,
) -> Connection:
    """Register a connection with a token pair obtained elsewhere (tokens are stored encrypted by `store`)."""
    name = validate_name(name)
    validate_region(region)
    if interval < 1:
        raise ConfigurationError("the sync interval must be at least 1 minute")
    if session.scalar(select(Connection.id).where(Connection.name == name)) is not None:
        raise ConfigurationError(f"a connection named {name!r} already exists; remove it first")
    connection = Connection(
        name=name,
        region=region,
        status=ConnectionStatus.ACTIVE,
        sync_interval_minutes=interval,
        current_division=division,
        # A division named here is the one to sync: divisions found later wait to be chosen.
        divisions_chosen=division is not None,
    )
    session.add(connection)
    session.flush()
    store.save(session, connection.id, pair)
    if division is not None:
        ensure_division(session, connection.id, division, is_current=True)
    return connection


def remove_connection(session: Session, name: str) -> None:
    """Deletes the connection with its tokens, divisions, cursors and runs (synced rows stay)."""
    connection = get_connection_by_name(session, name)
    session.execute(delete(Connection).where(Connection.id == connection.id))


def change_schedule(
    session: Session, name: str, *, now: datetime, interval: int | None = None, paused: bool | None = None
) -> Connection:
    """Change a connection's interval and/or pause it; beat picks the change up at its next tick.

    A shorter interval takes effect at once: the next sync moves to `last sync + new interval` when that is sooner
    than the one already planned. A paused connection is not scheduled, but the keep-alive still refreshes it.
    """
    connection = get_connection_by_name(session, name)
    if interval is not None:
        if interval < 1:
            raise ConfigurationError("the interval is at least 1 minute")
        connection.sync_interval_minutes = interval
        sooner = (connection.last_sync_at or now) + timedelta(minutes=interval)
        if connection.next_sync_at is None or sooner < connection.next_sync_at:
            connection.next_sync_at = sooner
    if paused is not None:
        connection.paused = paused
    return connection


@dataclass
class ConnectionReport:
    """What `exact-sync status` shows for one connection."""

    connection: Connection
    token: ConnectionToken | None
    last_run: SyncRun | None
    divisions: list[Division] = field(default_factory=list)
    cursors: list[SyncCursor] = field(default_factory=list)
    # each entity the connection has on with its scheduled interval (None: every run); switched-off ones absent
    intervals: Mapping[str, timedelta | None] = field(default_factory=dict)


def connection_reports(session: Session, name: str | None = None) -> list[ConnectionReport]:
    connections = [get_connection_by_name(session, name)] if name else list(list_connections(session))
    reports = []
    for connection in connections:
        last_run = session.scalar(
            select(SyncRun).where(SyncRun.connection_id == connection.id).order_by(SyncRun.id.desc()).limit(1)
        )
        divisions = session.scalars(
            select(Division).where(Division.connection_id == connection.id).order_by(Division.code)
        ).all()
        cursors = session.scalars(
            select(SyncCursor)
            .where(SyncCursor.connection_id == connection.id)
            .order_by(SyncCursor.division, SyncCursor.entity)
        ).all()
        reports.append(
            ConnectionReport(
                connection=connection,
                token=session.get(ConnectionToken, connection.id),
                last_run=last_run,
                divisions=list(divisions),
                cursors=list(cursors),
                intervals=schedule_for(session, connection.id, datetime.now(UTC)).intervals,
            )
        )
    return reports
