"""What an action declares: its Exact resource, verb, fields (kinds, required, enums, references), lines, marker.

One generic code path (syncs.actions.perform) runs every declaration; an action is a few lines of data built by
syncs.actions.build on the entity declarations: an action names its entity (the synced stream it writes into)
and which of its fields are writable and required, and each field's kind comes from the entity's declaration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verb(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    GET = "get"
    LIST = "list"
    ATTACH = "attach_file"  # a file on a record (a Document with an attachment, linked to it)


class Kind(enum.StrEnum):
    GUID = "guid"
    TEXT = "text"
    INT = "int"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"  # ISO YYYY-MM-DD (or a full ISO timestamp)
    BASE64 = "base64"


@dataclass(frozen=True)
class Lookup:
    """Tenant data an action looks up when the caller leaves the field empty: the `column` of the one live row
    of a synced `table` where `where` holds (a division with several, or none, is asked to choose)."""

    table: str
    column: str
    where: tuple[str, object]
    what: str  # "sales journal": named in the answer and in the message


@dataclass(frozen=True)
class Param:
    name: str  # Exact's field name, as sent
    kind: Kind
    required: bool = False
    choices: tuple[object, ...] = ()  # allowed values (enums)
    references: str | None = None  # a synced table whose `id` (same division, not deleted) it must name
    max_length: int | None = None
    doc: str = ""
    lookup: Lookup | None = None  # required, but looked up when left empty
    max_bytes: int | None = None  # BASE64: the decoded size limit
    live: bool = True  # False: a row marked deleted counts too (a delete's own key: deleting again is harmless)


@dataclass(frozen=True)
class Lines:
    name: str  # the collection field, e.g. SalesInvoiceLines
    params: tuple[Param, ...]
    min_count: int = 1
    max_count: int = 500
    one_of: tuple[str, ...] = ()  # each line needs at least one of these (Item or GLAccount)
    entity: str | None = None  # the synced stream of the lines when it is not the header's (sales_order_lines)
    header_row: bool = False  # the entity's sync feed also carries the header as a LineNumber 0 row


@dataclass(frozen=True)
class Action:
    name: str  # `accounts.create`: the entity's name and the verb
    verb: Verb
    resource: str  # relative to /api/v1/{division}/
    key: str  # Exact's key field of the resource
    params: tuple[Param, ...] = ()
    lines: Lines | None = None  # the lines a payload carries (a create's)
    # A field the action writes `exact-sync:<key>` into when the caller leaves it empty, so a create whose
    # answer was lost can be found again before it is sent twice. A caller's own value is used as the marker.
    marker: str | None = None
    entity: str | None = None  # the synced stream the record is upserted into (read-your-writes)
    record_lines: Lines | None = None  # the lines the stored record has: read back (`$expand`) and upserted
    require_status: tuple[str, object] | None = None  # (field, value) the stored record must have to update
    filter: str | None = None  # a list's `$filter` (standard endpoints refuse unfiltered GETs)
    select: str | None = None  # a list's `$select`
    doc: str = ""

    @property
    def expand(self) -> str | None:
        return self.record_lines.name if self.record_lines else None

    @property
    def writes(self) -> bool:
        return self.verb in (Verb.CREATE, Verb.UPDATE, Verb.DELETE, Verb.ATTACH)

    def fields(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}
