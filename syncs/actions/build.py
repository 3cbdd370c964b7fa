"""Building actions on the entity declarations: an action lists which of its entity's fields are writable and
which Exact requires (catalog W5); each field's kind, and the synced table a GUID field refers to, come from the
entity catalog. Fields Exact accepts but exact-sync does not sync (Remarks, Notes, ...) are declared write-only
with the entity vocabulary's `fields(...)`, so every field has one declared kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncs.actions.declaration import Action, Kind, Lines, Lookup, Param, Verb
from syncs.entities.catalog import CATALOG
from syncs.entities.declaration import Field, TableDecl
from syncs.entities.declaration import Kind as Stored
from syncs.entities.references import referenced

KINDS = {
    Stored.GUID: Kind.GUID, Stored.TEXT: Kind.TEXT, Stored.INT: Kind.INT, Stored.BIGINT: Kind.INT,
    Stored.NUMBER: Kind.NUMBER, Stored.BOOL: Kind.BOOL, Stored.DATETIME: Kind.DATE, Stored.DATE: Kind.DATE,
}  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """What a field must satisfy beyond its kind."""

    choices: tuple[object, ...] = ()
    max_length: int | None = None
    doc: str = ""
    lookup: Lookup | None = None
    max_bytes: int | None = None


def header_table(entity: str) -> TableDecl:
    """The table a stream's records (not their lines) go to: the header table of a header/line feed."""
    outputs = CATALOG[entity].outputs
    return next((o.table for o in outputs if o.split.header_of), outputs[0].table)


def line_table(entity: str) -> TableDecl:
    """The lines' table: the lines-only output of a header/line feed, else the stream's own table."""
    outputs = CATALOG[entity].outputs
    return next((o.table for o in outputs if o.split.lines_only), outputs[0].table)


def _reference(entity: str, field: str) -> str | None:
    """The synced table a GUID field names by its `id`, if any."""
    target = referenced(entity, field)
    if target is None or target[0] not in CATALOG or header_table(target[0]).key != (target[1],):
        return None
    return target[0]


def params(
    entity: str | None,
    table: TableDecl | None,
    required: str,
    optional: str = "",
    write_only: tuple[Field, ...] = (),
    rules: Mapping[str, Rule] | None = None,
) -> tuple[Param, ...]:
    """Params of the named fields, in order (required, optional, then the write-only ones not named yet); kinds
    from `table` (its key fields are GUIDs) or from `write_only`. A name declared nowhere raises at import."""
    kinds = {name: Stored.GUID for name in table.key} if table else {}
    kinds.update({f.exact: f.kind for f in (*(table.fields if table else ()), *write_only)})
    rules = rules or {}
    wanted = [(name, True) for name in required.split()] + [(name, False) for name in optional.split()]
    wanted += [(f.exact, False) for f in write_only if f.exact not in {name for name, _ in wanted}]
    unknown = [name for name, _ in wanted if name not in kinds] + sorted(set(rules) - {n for n, _ in wanted})
    if unknown:
        raise ValueError(f"{entity}: {unknown} are neither fields of {table.name if table else '-'} nor write-only")
    found = []
    for name, needed in wanted:
        kind, rule = KINDS[kinds[name]], rules.get(name, Rule())
        target = _reference(entity or "", name) if kind is Kind.GUID else None
        found.append(Param(name, kind, needed, rule.choices, target, rule.max_length, rule.doc, rule.lookup,
                           rule.max_bytes))  # fmt: skip
    return tuple(found)


def lines(
    name: str,
    entity: str | None,
    required: str,
    optional: str = "",
    write_only: tuple[Field, ...] = (),
    separate: bool = False,
    **more: Any,
) -> Lines:
    """A document's lines: fields of the lines' table of `entity` (its own stream when `separate`, like
    sales_order_lines), or only write-only fields when the lines are not synced (`entity` None)."""
    table = line_table(entity) if entity else None
    return Lines(name, params(entity, table, required, optional, write_only), entity=entity if separate else None,
                 **more)  # fmt: skip


def create(
    entity: str,
    resource: str,
    *,
    required: str,
    optional: str = "",
    write_only: tuple[Field, ...] = (),
    rules: Mapping[str, Rule] | None = None,
    document_lines: Lines | None = None,
    marker: str,
    doc: str,
    key: str | None = None,
) -> Action:
    """A create of one entity: POST the resource (keyed by `key`, default its table's key), then read it back."""
    table = header_table(entity)
    return Action(
        f"{entity}.create", Verb.CREATE, resource, key or table.key[0],
        params(entity, table, required, optional, write_only, rules), document_lines, marker, entity,
        record_lines=document_lines, doc=doc,
    )  # fmt: skip


def update_of(create: Action, **changes: Any) -> Action:
    """The update twin of a create: the key is required, every other field optional (a partial PUT of the
    header; lines are not changed)."""
    optional = tuple(dataclasses.replace(param, required=False, lookup=None) for param in create.params)
    own = _own_table(create)
    key = Param(create.key, Kind.GUID, True, references=own, doc="the record's key (a live row of its table)")
    return dataclasses.replace(
        create, name=create.name.replace(".create", ".update"), verb=Verb.UPDATE, params=(key, *optional),
        lines=None, marker=None, doc=f"Change fields of a record (PUT {create.resource}(guid'...'): 204, then read "
        "back).", **changes,
    )  # fmt: skip


def _own_table(create: Action) -> str | None:
    """The synced table whose `id` is the action's key, if any."""
    return create.entity if create.entity and header_table(create.entity).key == (create.key,) else None


def by_key(create: Action, verb: Verb) -> Action:
    """A delete's key must be a row of its synced table (deleted already is fine), so a typo or another division's
    key never reaches Exact; a get may read any record."""
    docs = {Verb.DELETE: "Delete the record (DELETE: 204); its synced row is marked deleted at once.",
            Verb.GET: "Read one record by key as Exact holds it now (with its lines), and its synced row."}  # fmt: skip
    own = _own_table(create) if verb is Verb.DELETE else None
    key = Param(create.key, Kind.GUID, True, references=own, live=False, doc="the record's key")
    return dataclasses.replace(
        create, name=create.name.replace(".create", f".{verb.value}"), verb=verb, params=(key,), lines=None,
        marker=None, doc=docs[verb],
    )  # fmt: skip


def crud(create: Action, *verbs: Verb, **update: Any) -> tuple[Action, ...]:
    """The create and the named others (UPDATE, DELETE, GET) of one declaration."""
    made = [create]
    for verb in verbs:
        made.append(update_of(create, **update) if verb is Verb.UPDATE else by_key(create, verb))
    return tuple(made)


def reference_list(name: str, resource: str, select: str, filter: str | None = None) -> Action:
    return Action(
        f"{name}.list", Verb.LIST, resource, "ID", select=select, filter=filter,
        doc=f"List {name.replace('_', ' ')} ({resource}), every page.",
    )  # fmt: skip
