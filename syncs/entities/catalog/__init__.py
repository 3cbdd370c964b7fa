"""Every declared entity, by stream name. Facts (endpoints, keys, EntityTypes, types) from the entity catalog
(/work/shared/exact-entities.md at the time of writing); each declaration names its sources."""

from __future__ import annotations

from syncs.entities.catalog import cashflow, crm, documents, financial, logistics, project, purchase, sales, system
from syncs.entities.declaration import Entity, TableDecl

CATALOG: dict[str, Entity] = {
    entity.name: entity
    for module in (crm, financial, logistics, sales, purchase, cashflow, documents, project, system)
    for entity in module.ENTITIES
}
TABLES: dict[str, TableDecl] = {table.name: table for entity in CATALOG.values() for table in entity.tables}

__all__ = ["CATALOG", "TABLES"]
