"""Tables holding Exact Online records, built from the entity declarations (`syncs.entities.catalog`).

Rows are never hard-deleted: Exact's deletions set `deleted_at`. Every table is keyed by `(division, id)` and has
the entity's typed columns (each with a Postgres comment naming its Exact field) plus `modified`, `timestamp`,
`deleted_at`, `raw` and `synced_at`. The catalog is pure data, so `models` depends on nothing else of ours.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped
from sqlalchemy.types import TypeEngine, Uuid

from models.base import Base
from syncs.entities.catalog import TABLES
from syncs.entities.declaration import Field, Kind, TableDecl

COLUMN_TYPES: dict[Kind, TypeEngine[Any]] = {
    Kind.GUID: Uuid(),
    Kind.TEXT: Text(),
    Kind.INT: Integer(),
    Kind.BIGINT: BigInteger(),
    Kind.NUMBER: Numeric(),
    Kind.BOOL: Boolean(),
    Kind.DATETIME: DateTime(timezone=True),
    Kind.DATE: Date(),
}


def _common_columns(decl: TableDecl) -> list[Column[Any]]:
    key = " + ".join(decl.key)
    id_comment = f"Exact {key}" if not decl.composite and decl.key[0] != "Code" else f"UUIDv5 of Exact {key}"
    columns: list[Column[Any]] = [
        Column("division", Integer, primary_key=True, autoincrement=False, comment="Exact division (company) code"),
        Column("id", Uuid, primary_key=True, comment=id_comment),
    ]
    if decl.composite:
        columns.append(Column("exact_id", Uuid, comment=f"Exact {decl.key[0]} (not unique on its own)"))
    columns += [
        Column("modified", DateTime(timezone=True), comment="Exact Modified (UTC)"),
        Column("timestamp", BigInteger, comment="Exact Timestamp (row version) where the feed has one"),
        Column("deleted_at", DateTime(timezone=True), comment="when Exact reported the record deleted"),
        Column("raw", JSONB, nullable=False, comment="the record as Exact sent it, without __metadata"),
        Column("synced_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]
    return columns


def _column(field: Field) -> Column[Any]:
    return Column(field.column, COLUMN_TYPES[field.kind], comment=f"Exact {field.exact}")


def _derived(field: Field) -> Column[Any]:
    return Column(field.column, COLUMN_TYPES[field.kind], comment=f"sum of the live lines' {field.exact}")


def build_table(decl: TableDecl) -> Table:
    own = [_column(f) for f in decl.fields if f.column != "modified"] + [_derived(f) for f in decl.derived]
    indexes = [Index(f"ix_{decl.name}_{f.column}", "division", f.column) for f in decl.fields if f.index]
    return Table(decl.name, Base.metadata, *_common_columns(decl), *own, *indexes, comment=decl.doc)


SYNCED_TABLES: dict[str, Table] = {name: build_table(decl) for name, decl in sorted(TABLES.items())}


class SyncedRecord(Base):
    """An ORM view of a synced table: the common columns typed, the entity's own columns reached by name."""

    __abstract__ = True

    division: Mapped[int]
    id: Mapped[uuid.UUID]
    modified: Mapped[datetime | None]
    timestamp: Mapped[int | None]
    deleted_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]]
    synced_at: Mapped[datetime]

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...


def _model_name(table: str) -> str:
    return "".join(part.title() for part in table.split("_")) + "Record"


SYNCED_MODELS: dict[str, type[SyncedRecord]] = {
    name: type(_model_name(name), (SyncedRecord,), {"__table__": table}) for name, table in SYNCED_TABLES.items()
}
Account = SYNCED_MODELS["accounts"]
SalesInvoice = SYNCED_MODELS["sales_invoices"]
SalesInvoiceLine = SYNCED_MODELS["sales_invoice_lines"]
