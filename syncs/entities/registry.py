"""The runtime registry: every declared entity with its compiled writer, by stream name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from syncs.entities.catalog import CATALOG
from syncs.entities.declaration import Cadence, Entity, Strategy

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from syncs.entities.base import Deletion, PageResult, Record, Row
    from syncs.entities.writer import EntityWriter


@dataclass(frozen=True)
class EntitySpec:
    """An entity as the engine uses it: its declaration and its writer (compiled on first use)."""

    entity: Entity

    @property
    def name(self) -> str:
        return self.entity.name

    @property
    def endpoint(self) -> str:
        return self.entity.endpoint

    @property
    def strategy(self) -> Strategy:
        return self.entity.strategy

    @property
    def cadence(self) -> Cadence:
        return self.entity.cadence

    @property
    def fields(self) -> tuple[str, ...]:
        return self.entity.select_fields

    @property
    def select(self) -> str:
        return self.entity.select

    @property
    def deletion_entity_types(self) -> frozenset[int]:
        return self.entity.deleted_types

    @cached_property
    def writer(self) -> EntityWriter:
        # Imported here: what only reads the catalog (`status`, webhooks' topics) starts without the tables.
        from models.synced import SYNCED_TABLES
        from syncs.entities.hooks import BEFORE_HOOKS, HOOKS
        from syncs.entities.writer import EntityWriter

        name = self.entity.hook
        return EntityWriter(self.entity, SYNCED_TABLES, HOOKS.get(name or ""), BEFORE_HOOKS.get(name or ""))

    def write_page(self, session: Session, division: int, rows: Sequence[Row]) -> PageResult:
        return self.writer.write_page(session, division, rows)

    def apply_deletions(self, session: Session, division: int, deletions: Sequence[Deletion]) -> int:
        return self.writer.apply_deletions(session, division, deletions)

    def records(self, rows: Sequence[Row], division: int) -> dict[str, list[Record]]:
        """A page's records per table, as they would be written (for benchmarks and tests)."""
        return self.writer.records(rows, division)

    def mark_missing(self, session: Session, division: int, seen: Mapping[str, set[Any]]) -> int:
        return self.writer.mark_missing(session, division, seen)


ENTITIES: dict[str, EntitySpec] = {name: EntitySpec(entity) for name, entity in CATALOG.items()}
# What a run without `--entity` syncs: every entity (per-entity cadence decides when each is read).
DEFAULT_ENTITIES: tuple[str, ...] = tuple(ENTITIES)
