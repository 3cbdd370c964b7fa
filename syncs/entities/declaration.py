"""The vocabulary of entity declarations: fields, output tables, strategies and cadences.

Pure data (no database, no HTTP): `models.synced` builds the SQLAlchemy tables from it, the engine its streams
and compiled row mappers, the sandbox its served rows, `docs` the README's schema section. One `Entity` is one
Exact endpoint read as one stream; it fills one or more `TableDecl`s (header/line feeds, shared feeds).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class Kind(enum.StrEnum):
    """How an Exact value is read and stored. Exact's Edm.Int16/Int32/Byte are all `int` (Postgres integer)."""

    GUID = "guid"
    TEXT = "text"
    INT = "int"
    BIGINT = "bigint"
    NUMBER = "number"  # Edm.Double/Decimal -> numeric, exact as sent
    BOOL = "bool"
    DATETIME = "datetime"  # /Date(ms)/ in Amsterdam wall time -> timestamptz (UTC)
    DATE = "date"  # a calendar day Exact sends as a /Date(ms)/ midnight -> date


class Strategy(enum.StrEnum):
    SYNC = "sync"  # sync/... endpoint: `Timestamp gt n`, 1,000 rows a page, sync/Deleted for deletions
    MODIFIED = "modified"  # standard endpoint: `Modified ge` (Amsterdam time) with an overlap, 60 rows a page
    SNAPSHOT = "snapshot"  # standard endpoint read whole; rows gone from it are marked deleted


class Cadence(enum.StrEnum):
    """Default interval group: `transactional` follows the connection's interval, the others are fixed."""

    TRANSACTIONAL = "transactional"
    MASTER = "master"  # every 4 hours
    REFERENCE = "reference"  # daily


_WORD = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """Exact's PascalCase to a column name: `VATAmountDC` -> `vat_amount_dc`, `AddressLine1` -> `address_line1`."""
    return _WORD.sub("_", name).lower()


@dataclass(frozen=True)
class Field:
    exact: str  # the name in Exact's JSON and in `$select`
    kind: Kind
    column: str  # snake_case column in our table
    index: bool = False  # indexed together with division (a column people join on)


def fields(
    *,
    guid: str = "",
    text: str = "",
    int: str = "",
    bigint: str = "",
    number: str = "",
    bool: str = "",
    datetime: str = "",
    date: str = "",
    index: str = "",
    columns: dict[str, str] | None = None,
) -> tuple[Field, ...]:
    """Fields from space-separated Exact names per kind; `index` names the ones to index, `columns` renames."""
    indexed = set(index.split())
    renamed = columns or {}
    groups = (
        (Kind.GUID, guid), (Kind.TEXT, text), (Kind.INT, int), (Kind.BIGINT, bigint), (Kind.NUMBER, number),
        (Kind.BOOL, bool), (Kind.DATETIME, datetime), (Kind.DATE, date),
    )  # fmt: skip
    found = tuple(
        Field(name, kind, renamed.get(name, snake(name)), name in indexed)
        for kind, names in groups
        for name in names.split()
    )
    unknown = indexed - {f.exact for f in found}
    if unknown:
        raise ValueError(f"index names fields that are not declared: {sorted(unknown)}")
    return found


@dataclass(frozen=True)
class TableDecl:
    """One synced table: its key (the Exact field(s) that make `id`), its typed fields and what it holds."""

    name: str
    key: tuple[str, ...]  # one GUID field, or several whose values make a name-based UUID (`exact_id`: the first)
    fields: tuple[Field, ...]
    doc: str
    derived: tuple[Field, ...] = ()  # columns a hook fills (invoice totals), never read from a row

    @property
    def composite(self) -> bool:
        return len(self.key) > 1


@dataclass(frozen=True)
class Split:
    """Which rows of a feed go to which table: every row, rows where a field has a value, or a header/line split.

    `header_of`: this table takes one row per value of that field (the header key), preferring the row whose
    LineNumber is 0 (Exact's header row), else the newest. `lines_only`: rows with LineNumber 0 are skipped.
    `where`: only rows whose field equals the value (compared as text, Exact may send numbers as strings).
    """

    header_of: str | None = None
    lines_only: bool = False
    where: tuple[str, str] | None = None


@dataclass(frozen=True)
class Output:
    table: TableDecl
    split: Split = field(default_factory=Split)


@dataclass(frozen=True)
class Entity:
    """One stream: an Exact endpoint, how it is read, what it fills and how deletions reach it."""

    name: str  # the stream's name: cursor, `--entity`, status
    endpoint: str  # relative to /api/v1/{division}/
    strategy: Strategy
    outputs: tuple[Output, ...]
    cadence: Cadence
    deleted_types: frozenset[int] = frozenset()  # sync/Deleted EntityType values for this entity
    topic: str | None = None  # Exact webhook topic
    source: str = ""  # where the facts come from (catalog keys: PIS, PQ, NG, ...)
    division_field: str | None = None  # a field that must equal the division asked for (checked when set)
    extra_select: tuple[str, ...] = ()  # fields read but not stored in a column (kept in raw)
    filter: str | None = None  # an extra OData $filter for standard endpoints ("Code eq {division}")
    hook: str | None = None  # the name of a special-behaviour hook in syncs.entities.hooks

    @property
    def tables(self) -> tuple[TableDecl, ...]:
        return tuple(output.table for output in self.outputs)

    @property
    def row_key(self) -> str:
        """The field that tells a feed's rows apart (a header/line feed's line key; names a row in errors)."""
        rows = next((o.table for o in self.outputs if o.split.header_of is None), self.outputs[0].table)
        return rows.key[0]

    @property
    def header_of(self) -> str | None:
        return next((o.split.header_of for o in self.outputs if o.split.header_of), None)

    @property
    def select_fields(self) -> tuple[str, ...]:
        """The `$select` list: keys, every declared field, Timestamp for sync endpoints; each once, in order."""
        names: list[str] = []
        if self.strategy is Strategy.SYNC:
            names.append("Timestamp")
        if self.division_field:
            names.append(self.division_field)
        for table in self.tables:
            names.extend(table.key)
            names.extend(f.exact for f in table.fields)
        names.extend(self.extra_select)
        return tuple(dict.fromkeys(names))

    @property
    def select(self) -> str:
        return ",".join(self.select_fields)
