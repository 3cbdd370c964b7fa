"""How each strategy reads its endpoint: the request's parameters, whether a crashed enumeration may be resumed,
and what happens once an enumeration is complete.

- sync: `Timestamp gt {cursor}L` on a sync/ endpoint; the cursor is the highest Timestamp committed.
- modified: `Modified ge datetime'...'` on a standard endpoint, written in Exact's local Amsterdam time, starting
  MODIFIED_OVERLAP before the newest Modified committed (the cursor, kept as epoch milliseconds): a row saved
  with an older Modified while the last run read (or on the boundary second) is read again, and newer-only
  upserts make the overlap free of side effects.
- snapshot: the whole (small) list every time; when the last page is committed, the division's rows that the
  snapshot did not list are marked deleted. Never resumed: the keys seen live in the run's memory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from syncs.entities.base import PageResult
from syncs.entities.declaration import Strategy
from syncs.entities.registry import EntitySpec
from syncs.exact.values import AMSTERDAM

if TYPE_CHECKING:
    from syncs.entities.writer import PreparedPage

MODIFIED_OVERLAP = timedelta(minutes=30)
Params = Callable[[int, int], dict[str, str]]  # (division, cursor) -> query parameters
Finish = Callable[[Session, int], int]  # at the end of a complete enumeration; returns rows marked deleted


def exact_local(instant: datetime) -> str:
    """An OData datetime literal in Exact's local (Amsterdam) wall time."""
    return f"datetime'{instant.astimezone(AMSTERDAM).strftime('%Y-%m-%dT%H:%M:%S')}'"


def modified_since(cursor_ms: int) -> str:
    start = (
        datetime.fromtimestamp(cursor_ms / 1000, UTC) - MODIFIED_OVERLAP
        if cursor_ms
        else datetime(1970, 1, 1, tzinfo=UTC)
    )
    return f"Modified ge {exact_local(start)}"


def sync_params_of(select: str) -> Params:
    def sync(division: int, cursor: int) -> dict[str, str]:
        return {"$filter": f"Timestamp gt {cursor}L", "$select": select}

    return sync


def params_for(spec: EntitySpec) -> Params:
    select = spec.select
    extra = spec.entity.filter
    sync = sync_params_of(select)

    def modified(division: int, cursor: int) -> dict[str, str]:
        return {"$filter": modified_since(cursor), "$select": select}

    def snapshot(division: int, cursor: int) -> dict[str, str]:
        params = {"$select": select}
        if extra:
            params["$filter"] = extra.format(division=division)
        return params

    return {Strategy.SYNC: sync, Strategy.MODIFIED: modified, Strategy.SNAPSHOT: snapshot}[spec.strategy]


def from_start(params: Params) -> Params:
    """The same request from the very beginning, whatever the cursor (a reconciliation's full read)."""

    def start(division: int, cursor: int) -> dict[str, str]:
        return params(division, 0)

    return start


class SnapshotRun:
    """One complete listing (a snapshot, or a reconciliation's full read): writes pages remembering the keys
    listed per table, then marks the rest deleted."""

    def __init__(self, spec: EntitySpec) -> None:
        self.spec = spec
        self.seen: dict[str, set[Any]] = {}

    def write(self, session: Session, division: int, page: PreparedPage) -> PageResult:
        return self.spec.writer.write_prepared(session, division, page, seen=self.seen)

    def finish(self, session: Session, division: int) -> int:
        return self.spec.mark_missing(session, division, self.seen)
