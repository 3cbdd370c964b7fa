"""A stream's stored cursor (`sync_cursors`): its Timestamp, and an unfinished enumeration's resume point (the
rules are in syncs.engine.streams)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.internal import SyncCursor

# A resume point older than this starts a fresh enumeration instead: rows changed meanwhile would only be seen
# again by a fresh one if Exact's pages were not in Timestamp order (unconfirmed), so resuming is kept for the
# quick retries after a crash or a passing error.
RESUME_MAX_AGE = timedelta(minutes=30)


@dataclass(frozen=True)
class CursorState:
    timestamp: int = 0
    resume_url: str | None = None  # d.__next of the last committed page of an unfinished enumeration
    pending_timestamp: int | None = None  # the highest Timestamp that enumeration committed
    stale: bool = False  # the resume point is older than RESUME_MAX_AGE

    @property
    def unfinished(self) -> bool:
        return self.resume_url is not None or self.pending_timestamp is not None


def stored_state(session: Session, connection_id: int, division: int, entity: str) -> CursorState:
    age = func.now() - SyncCursor.updated_at
    found = session.execute(
        select(SyncCursor.timestamp, SyncCursor.resume_url, SyncCursor.pending_timestamp, (age > RESUME_MAX_AGE)).where(
            SyncCursor.connection_id == connection_id,
            SyncCursor.division == division,
            SyncCursor.entity == entity,
        )
    ).one_or_none()
    if found is None:
        return CursorState()
    return CursorState(found[0] or 0, found[1], found[2], bool(found[3]))


def save_cursor(session: Session, connection_id: int, division: int, entity: str, timestamp: int) -> None:
    """Raise the stored cursor to `timestamp` (never lower it) and end any unfinished enumeration, in the
    caller's transaction: call it only once everything up to `timestamp` is committed."""
    stmt = insert(SyncCursor).values(connection_id=connection_id, division=division, entity=entity, timestamp=timestamp)
    stmt = stmt.on_conflict_do_update(
        index_elements=[SyncCursor.connection_id, SyncCursor.division, SyncCursor.entity],
        set_={
            "timestamp": func.greatest(SyncCursor.timestamp, stmt.excluded.timestamp),
            "resume_url": None,
            "pending_timestamp": None,
            "updated_at": func.now(),
        },
    )
    session.execute(stmt)


def save_progress(
    session: Session, connection_id: int, division: int, entity: str, resume_url: str | None, pending: int | None
) -> None:
    """Record an unfinished enumeration's resume point (the stored cursor stays), in the caller's transaction."""
    stmt = insert(SyncCursor).values(
        connection_id=connection_id,
        division=division,
        entity=entity,
        timestamp=0,
        resume_url=resume_url,
        pending_timestamp=pending,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[SyncCursor.connection_id, SyncCursor.division, SyncCursor.entity],
        set_={
            "resume_url": stmt.excluded.resume_url,
            "pending_timestamp": stmt.excluded.pending_timestamp,
            "updated_at": func.now(),
        },
    )
    session.execute(stmt)
