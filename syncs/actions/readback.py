"""Read-your-writes: the record Exact now holds goes into its synced table at once, as a sync would write it.

A standard endpoint's record has no sync `Timestamp`, so it is written with the stored row's Timestamp + 1 (1 for
a new row): above what the table holds, and never above the real row version Exact gave the write. The next sync
brings that real Timestamp with the same values, so the row's content does not change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Uuid

from syncs.actions.declaration import Action
from syncs.entities.declaration import Strategy
from syncs.entities.registry import ENTITIES, EntitySpec
from syncs.exact.values import exact_datetime


def _lines(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    lines = record.get(name) or []
    if isinstance(lines, dict):
        lines = lines.get("results") or []
    return [line for line in lines if isinstance(line, dict)]


def _line_row(header: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    """A header/line feed's row: the line's fields over the header's, and the later of the two `Modified`
    (a change to either re-stamps every row of the document)."""
    row = {**header, **line}
    stamps = [value for value in (header.get("Modified"), line.get("Modified")) if isinstance(value, str)]
    if stamps:
        row["Modified"] = max(
            stamps, key=lambda value: exact_datetime(value, "Modified") or datetime.min.replace(tzinfo=UTC)
        )
    return row


def sync_rows(
    action: Action, spec: EntitySpec, record: dict[str, Any], key: str, timestamp: int
) -> list[dict[str, Any]]:
    """The record in its sync feed's shape (the feed's `$select` fields only): one row; or, for a header/line
    feed, one per line with the header's fields (and the LineNumber 0 header row when Exact's feed has one).
    The header table's key is filled with the record's key when the standard record lacks it (a sales order's
    sync `ID` is its `OrderID`, as far as known)."""
    header = {spec.entity.tables[0].key[0]: key, **record}
    merged = [header]
    lines = action.record_lines
    if spec.entity.header_of and lines is not None:
        merged = [_line_row(header, line) for line in _lines(record, lines.name)]
        if lines.header_row:
            merged.insert(0, {**header, "LineNumber": 0})
    return [_feed_row(spec, row, timestamp) for row in merged]


def _feed_row(spec: EntitySpec, row: dict[str, Any], timestamp: int) -> dict[str, Any]:
    found = {name: row[name] for name in spec.fields if name in row}
    return {**found, "Timestamp": timestamp} if spec.strategy is Strategy.SYNC else found


def _stored_timestamp(session: Session, spec: EntitySpec, division: int, rows: list[dict[str, Any]]) -> int:
    """The highest Timestamp any of the entity's tables holds for these rows (header and lines)."""
    top = 0
    for decl in spec.entity.tables:
        keys = {str(row[decl.key[0]]) for row in rows if row.get(decl.key[0])} if not decl.composite else set()
        if not keys:
            continue
        found = session.scalar(
            text(f'SELECT max(timestamp) FROM "{decl.name}" WHERE division = :d AND id = ANY(:k)').bindparams(
                bindparam("k", type_=ARRAY(Uuid()))
            ),
            {"d": division, "k": [UUID(key) for key in keys]},
        )
        top = max(top, int(found or 0))
    return top


def _upsert(session: Session, spec: EntitySpec, division: int, rows: list[dict[str, Any]]) -> None:
    """Rows of a sync feed get the stored row's Timestamp + 1 (see the module's docstring)."""
    if spec.strategy is Strategy.SYNC:
        timestamp = _stored_timestamp(session, spec, division, rows) + 1
        rows = [{**row, "Timestamp": timestamp} for row in rows]
    spec.write_page(session, division, rows)


def upsert_synced(session: Session, action: Action, division: int, key: str, record: dict[str, Any]) -> bool:
    """Write the record into its synced table(s), and its lines into theirs when they are another stream;
    False when that entity is not synced here."""
    spec = ENTITIES.get(action.entity or "")
    if spec is None:
        return False
    _upsert(session, spec, division, sync_rows(action, spec, record, key, 0))
    declared = action.record_lines
    lines = ENTITIES.get(declared.entity or "") if declared else None
    if lines is not None and declared is not None:
        rows = [_feed_row(lines, {action.key: key, **line}, 0) for line in _lines(record, declared.name)]
        _upsert(session, lines, division, rows)
    return True


def synced_row(session: Session, action: Action, division: int, key: str) -> dict[str, Any] | None:
    if action.entity not in ENTITIES:
        return None
    row = session.execute(
        text(f'SELECT * FROM "{action.entity}" WHERE division = :d AND id = :k'), {"d": division, "k": UUID(key)}
    ).mappings().first()  # fmt: skip
    return dict(row) if row is not None else None


def mark_synced_deleted(session: Session, action: Action, division: int, key: str) -> None:
    if action.entity not in ENTITIES:
        return
    session.execute(
        text(f'UPDATE "{action.entity}" SET deleted_at = now(), synced_at = now() '
             "WHERE division = :d AND id = :k AND deleted_at IS NULL"),
        {"d": division, "k": UUID(key)},
    )  # fmt: skip
