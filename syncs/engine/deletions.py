"""The sync/Deleted stream: one per division, shared by every entity table.

One stream (one cursor, entity name "deleted") rather than one filtered stream per entity: each stream costs
at least one API call per run, and the idle budget is <= 300 calls/day/division at a 15-minute interval
(accounts + invoices + deleted = 3 calls x 96 runs = 288).

A deletion marks rows (`deleted_at`), never removes them, and only rows whose Timestamp is not newer than the
deletion's. Deletions of EntityTypes no synced entity declares are read (for the cursor) and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from sqlalchemy.orm import Session

from syncs.entities.base import Deletion, DeletionApplier, PageResult, Row, RowReader
from syncs.entities.registry import ENTITIES

CURSOR_ENTITY: Final = "deleted"
ENDPOINT: Final = "sync/Deleted"
FIELDS: Final = ("ID", "Timestamp", "DeletedBy", "DeletedDate", "Division", "EntityKey", "EntityType")
SELECT: Final = ",".join(FIELDS)


@cache
def appliers() -> dict[int, DeletionApplier]:
    """EntityType -> how to apply its deletions, from the entity specs (fixed, so built once: every page of
    sync/Deleted reads it twice, to prepare and to write)."""
    found: dict[int, DeletionApplier] = {}
    for spec in ENTITIES.values():
        for entity_type in spec.deletion_entity_types:
            found[entity_type] = spec.apply_deletions
    return found


def read_page(division: int, rows: Sequence[Row], handled: frozenset[int]) -> tuple[dict[int, list[Deletion]], int]:
    """Validate a page: (deletions per handled EntityType, newest per key; max Timestamp of the page)."""
    grouped: dict[int, dict[object, Deletion]] = {}
    top = 0
    for row in rows:
        r = RowReader("deleted", row)
        timestamp = r.timestamp()
        top = max(top, timestamp)
        entity_type = r.integer("EntityType", required=True)
        assert entity_type is not None
        if entity_type not in handled:
            continue
        r.division(division)
        deletion = Deletion(r.key("EntityKey"), timestamp, r.instant("DeletedDate"))
        per_key = grouped.setdefault(entity_type, {})
        seen = per_key.get(deletion.key)
        if seen is None or deletion.timestamp > seen.timestamp:
            per_key[deletion.key] = deletion
    return {entity_type: list(per_key.values()) for entity_type, per_key in grouped.items()}, top


@dataclass(frozen=True)
class DeletionsPage:
    """A validated page of sync/Deleted: the deletions per handled EntityType, and the page's top Timestamp."""

    grouped: dict[int, list[Deletion]]
    max_timestamp: int


def prepare(division: int, rows: Sequence[Row]) -> DeletionsPage:
    """Everything of a page that needs no database (run ahead on the prepare thread, see syncs.engine.pipeline)."""
    return DeletionsPage(*read_page(division, rows, frozenset(appliers())))


def write_prepared(session: Session, division: int, page: DeletionsPage) -> PageResult:
    """Apply one prepared page of sync/Deleted rows; `deleted` counts the rows marked in all tables."""
    by_type = appliers()
    deleted = sum(by_type[entity_type](session, division, found) for entity_type, found in page.grouped.items())
    return PageResult(deleted=deleted, max_timestamp=page.max_timestamp)
