"""One `changes` row and one NOTIFY per committed page (or deletion batch) that changed rows.

Both are written inside the page's own transaction, as its last statements: Postgres delivers a NOTIFY only
when the transaction commits (never for a rolled-back page), and the row is visible exactly when the page's rows
are. Before numbering its row, a writer takes a transaction-scoped advisory lock that it holds until its
commit, so `seq` values become visible in increasing order: a client polling `seq > last_seen` never skips a
row that a slower transaction committed later with a lower number. The lock is the transaction's last, so it
cannot deadlock, and is held only for the commit itself.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from syncs.entities.base import PageResult

CHANNEL: Final = "exact_sync_changes"
# First key of the two-int advisory lock ordering feed writers ("EXCF"; runs.py's connection locks use "EXAC").
LOCK_KEY: Final = 0x45584346

_RECORD = text(
    """
    WITH added AS (
        INSERT INTO changes (connection_id, division, entity, inserted, updated, deleted, cursor)
        VALUES (:connection_id, :division, :entity, :inserted, :updated, :deleted, :cursor)
        RETURNING seq, connection_id, division, entity, inserted, updated, deleted, cursor
    )
    SELECT added.seq, pg_notify(:channel, json_build_object(
        'seq', added.seq, 'connection', c.name, 'division', added.division, 'entity', added.entity,
        'inserted', added.inserted, 'updated', added.updated, 'deleted', added.deleted, 'cursor', added.cursor
    )::text)
    FROM added JOIN connections c ON c.id = added.connection_id
    """
)


def record_change(
    session: Session, connection_id: int, division: int, entity: str, page: PageResult, cursor: int
) -> int | None:
    """Append what `page` changed and NOTIFY `CHANNEL`, in the caller's transaction (call it last); `cursor` is
    the highest Exact Timestamp the stream has committed with this page. Returns the new `seq`, or None when the
    page changed nothing (no row, no notification)."""
    if not (page.inserted or page.updated or page.deleted):
        return None
    session.execute(text("SELECT pg_advisory_xact_lock(:key, 0)"), {"key": LOCK_KEY})
    params = {
        "connection_id": connection_id,
        "division": division,
        "entity": entity,
        "inserted": page.inserted,
        "updated": page.updated,
        "deleted": page.deleted,
        "cursor": cursor,
        "channel": CHANNEL,
    }
    seq: int = session.execute(_RECORD, params).scalar_one()
    return seq
