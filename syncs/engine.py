"""Incremental sync of one division: each requested entity stream, then the shared deletions stream.

Each page is written and its cursor moved in ONE transaction, so a crash anywhere resumes from the last
committed page without losing or duplicating rows (upserts are newer-only, so re-reading a page is a no-op).

Cursor rules:
- A stream reads `Timestamp gt {cursor}L` where cursor is the stored `sync_cursors.timestamp` (0 when absent).
- Rows within a page need not be sorted; pages are assumed to follow each other in Timestamp order (Exact's
  skiptoken continues after the last row sent). Several rows may share one Timestamp (all lines of an invoice
  whose header changed), and such a group may straddle a page boundary, so after a page the cursor commits
  `page max - 1`: a resume re-reads the page's newest Timestamp (harmless) instead of skipping the rest of its
  group. When the stream ends, the cursor commits the max Timestamp seen (one small extra transaction).
- The stored cursor never moves backwards (GREATEST). A full run (also of the deletions stream) reads from 0
  and leaves the stored cursor where it was until it passes it; a crashed full run is not resumed: the next
  incremental run continues from the stored cursor (nothing is lost, all below it was committed before).
  A full run re-inserts rows missing locally; rows whose stored Timestamp equals Exact's are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from models.internal import SyncCursor
from syncs import deletions
from syncs.entities import ENTITIES
from syncs.entities.base import PageResult, PageWriter, Row
from syncs.errors import ConfigurationError, MalformedResponseError

Progress = Callable[[str, int], None]


class PageSource(Protocol):
    """What the engine needs of `syncs.client.ExactClient`."""

    def pages(self, division: int, endpoint: str, params: Mapping[str, str]) -> Iterator[list[dict[str, Any]]]: ...


@dataclass(frozen=True)
class SyncCounts:
    """Rows written: `inserted`/`updated` count invoice headers and lines alike; `deleted` rows marked."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def __add__(self, other: SyncCounts) -> SyncCounts:
        return SyncCounts(self.inserted + other.inserted, self.updated + other.updated, self.deleted + other.deleted)


@dataclass(frozen=True)
class Stream:
    name: str  # the cursor's entity name
    endpoint: str
    select: str
    write_page: PageWriter


def streams_for(entities: Sequence[str]) -> list[Stream]:
    """The entity streams asked for (in order, once each), then the deletions stream, which always runs."""
    unknown = [name for name in entities if name not in ENTITIES]
    if unknown:
        raise ConfigurationError(f"unknown entities {unknown}; known: {sorted(ENTITIES)}")
    specs = [ENTITIES[name] for name in dict.fromkeys(entities)]
    found = [Stream(spec.name, spec.endpoint, spec.select, spec.write_page) for spec in specs]
    found.append(Stream(deletions.CURSOR_ENTITY, deletions.ENDPOINT, deletions.SELECT, deletions.write_page))
    return found


def sync_division(
    sessions: sessionmaker[Session],
    client: PageSource,
    connection_id: int,
    division: int,
    entities: Sequence[str],
    *,
    full: bool = False,
    progress: Progress | None = None,
) -> SyncCounts:
    total = SyncCounts()
    for stream in streams_for(entities):
        total += sync_stream(sessions, client, connection_id, division, stream, full=full, progress=progress)
    return total


def stored_cursor(session: Session, connection_id: int, division: int, entity: str) -> int:
    found = session.scalar(
        select(SyncCursor.timestamp).where(
            SyncCursor.connection_id == connection_id,
            SyncCursor.division == division,
            SyncCursor.entity == entity,
        )
    )
    return found or 0


def save_cursor(session: Session, connection_id: int, division: int, entity: str, timestamp: int) -> None:
    """Raise the stored cursor to `timestamp` (never lower it), in the caller's transaction."""
    stmt = insert(SyncCursor).values(connection_id=connection_id, division=division, entity=entity, timestamp=timestamp)
    stmt = stmt.on_conflict_do_update(
        index_elements=[SyncCursor.connection_id, SyncCursor.division, SyncCursor.entity],
        set_={
            "timestamp": func.greatest(SyncCursor.timestamp, stmt.excluded.timestamp),
            "updated_at": func.now(),
        },
    )
    session.execute(stmt)


def sync_stream(
    sessions: sessionmaker[Session],
    client: PageSource,
    connection_id: int,
    division: int,
    stream: Stream,
    *,
    full: bool = False,
    progress: Progress | None = None,
) -> SyncCounts:
    with sessions() as session:
        start = 0 if full else stored_cursor(session, connection_id, division, stream.name)
    params = {"$filter": f"Timestamp gt {start}L", "$select": stream.select}
    counts = SyncCounts()
    committed = start  # what this run has made durable (a lower bound of the stored cursor)
    newest = start  # the highest Timestamp seen
    for number, rows in enumerate(client.pages(division, stream.endpoint, params), start=1):
        if not rows:
            continue
        with sessions.begin() as session:
            result = _write(session, division, stream, number, rows)
            newest = max(newest, result.max_timestamp)
            safe = max(committed, result.max_timestamp - 1)
            save_cursor(session, connection_id, division, stream.name, safe)
        committed = safe
        counts += SyncCounts(result.inserted, result.updated, result.deleted)
        if progress is not None:
            progress(stream.name, len(rows))
    if newest > committed:
        with sessions.begin() as session:
            save_cursor(session, connection_id, division, stream.name, newest)
    return counts


def _write(session: Session, division: int, stream: Stream, number: int, rows: Sequence[Row]) -> PageResult:
    where = f"division {division}, {stream.endpoint}, page {number}"
    try:
        return stream.write_page(session, division, rows)
    except MalformedResponseError as exc:
        raise MalformedResponseError(f"{where}: {exc}") from exc
    except DataError as exc:  # a value Postgres refuses (too long for its column, out of range, ...)
        raise MalformedResponseError(f"{where}: a value does not fit its column: {exc.orig}") from exc
