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


def sync_rows(action: Action, record: dict[str, Any], fields: tuple[str, ...], timestamp: int) -> list[dict[str, Any]]:
    """The record in its sync feed's shape (the feed's `$select` fields only): one row, or one per line."""
    merged = [record] if action.expand is None else [_line_row(record, line) for line in _lines(record, action.expand)]
    return [{**{name: row[name] for name in fields if name in row}, "Timestamp": timestamp} for row in merged]


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


def upsert_synced(session: Session, action: Action, division: int, key: str, record: dict[str, Any]) -> bool:
    """Write the record into its synced table(s); False when that entity is not synced here."""
    spec = ENTITIES.get(action.table or "")
    if spec is None:
        return False
    rows = sync_rows(action, record, spec.fields, 0)
    if spec.strategy is Strategy.SYNC:
        timestamp = _stored_timestamp(session, spec, division, rows) + 1
        rows = [{**row, "Timestamp": timestamp} for row in rows]
    else:
        rows = [{k: v for k, v in row.items() if k != "Timestamp"} for row in rows]
    spec.write_page(session, division, rows)
    return True


def synced_row(session: Session, action: Action, division: int, key: str) -> dict[str, Any] | None:
    if action.table not in ENTITIES:
        return None
    row = session.execute(
        text(f'SELECT * FROM "{action.table}" WHERE division = :d AND id = :k'), {"d": division, "k": UUID(key)}
    ).mappings().first()  # fmt: skip
    return dict(row) if row is not None else None


def mark_synced_deleted(session: Session, action: Action, division: int, key: str) -> None:
    if action.table not in ENTITIES:
        return
    session.execute(
        text(f'UPDATE "{action.table}" SET deleted_at = now(), synced_at = now() '
             "WHERE division = :d AND id = :k AND deleted_at IS NULL"),
        {"d": division, "k": UUID(key)},
    )  # fmt: skip
