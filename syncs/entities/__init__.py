"""The synced entities by name. Adding an entity = one module with a `SPEC` + a migration for its table."""

from __future__ import annotations

from syncs.entities import accounts, sales_invoices
from syncs.entities.base import EntitySpec, PageResult

ENTITIES: dict[str, EntitySpec] = {spec.name: spec for spec in (accounts.SPEC, sales_invoices.SPEC)}

__all__ = ["ENTITIES", "EntitySpec", "PageResult"]
