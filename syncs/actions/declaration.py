"""What an action declares: its Exact resource, verb, fields (kinds, required, enums, references), lines, marker.

One generic code path (syncs.actions.perform) runs every declaration; an action is a few lines of data.
Field kinds are Exact's Edm types as the entity catalog names them (shared/exact-entities.md, PIS).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Verb(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    GET = "get"
    LIST = "list"


class Kind(enum.StrEnum):
    GUID = "guid"
    TEXT = "text"
    INT = "int"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"  # ISO YYYY-MM-DD (or a full ISO timestamp)
    BASE64 = "base64"


@dataclass(frozen=True)
class Param:
    name: str  # Exact's field name, as sent
    kind: Kind
    required: bool = False
    choices: tuple[object, ...] = ()  # allowed values (enums)
    references: str | None = None  # a synced table whose `id` (same division, not deleted) it must name
    max_length: int | None = None
    doc: str = ""


@dataclass(frozen=True)
class Lines:
    name: str  # the collection field, e.g. SalesInvoiceLines
    params: tuple[Param, ...]
    min_count: int = 1
    max_count: int = 500
    one_of: tuple[str, ...] = ()  # each line needs at least one of these (Item or GLAccount)


@dataclass(frozen=True)
class Action:
    name: str  # `accounts.create`: the table's name and the verb
    verb: Verb
    resource: str  # relative to /api/v1/{division}/
    key: str  # Exact's key field of the resource
    params: tuple[Param, ...] = ()
    lines: Lines | None = None
    # A field the action writes `exact-sync:<key>` into when the caller leaves it empty, so a create whose
    # answer was lost can be found again before it is sent twice. A caller's own value is used as the marker.
    marker: str | None = None
    table: str | None = None  # the synced table the record is upserted into (read-your-writes)
    expand: str | None = None  # `$expand` when reading the record back (its lines)
    require_status: tuple[str, object] | None = None  # (field, value) the stored record must have to update
    filter: str | None = None  # a list's `$filter` (standard endpoints refuse unfiltered GETs)
    select: str | None = None  # a list's `$select`
    doc: str = ""
    examples: dict[str, object] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return self.verb in (Verb.CREATE, Verb.UPDATE, Verb.DELETE)

    def fields(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}
