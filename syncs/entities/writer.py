"""Writing an entity's pages and deletions into its tables, driven by its declaration.

A page is prepared whole before any SQL (`EntityWriter.prepare`: one compiled converter call per row, a bad value
failing the page naming the entity, the row's key, the field and the value; the newest row per key; each table's
records serialized as the upsert's one JSON parameter). Preparing is pure Python, so the engine runs it ahead on
the prepare thread while the page before is being written. Writing (`write_prepared`) then sends each output table
its records in ONE upsert statement. The caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, text
from sqlalchemy.orm import Session

from syncs.core.errors import MalformedResponseError
from syncs.entities.base import (
    DELETION_BINDS,
    Deletion,
    PageResult,
    Record,
    Row,
    deletion_params,
    mark_deleted_sql,
    records_payload,
    upsert_payload,
)
from syncs.entities.declaration import Entity, Kind, Output, Strategy, TableDecl, snake
from syncs.entities.mapper import compile_converter, entity_fields

KEY_NAMESPACE = uuid.UUID("6f1d7c9e-2a53-4f0b-9a55-3c2f0e1d5b77")  # name-based ids of non-GUID and composite keys
# Newer-only for feeds without a Timestamp (Modified filter, snapshots): never older than what is stored, and
# an unchanged row is left alone (a replayed page or a re-read snapshot changes nothing).
NEWER_BY_MODIFIED = (
    "(excluded.modified IS NULL OR t.modified IS NULL OR excluded.modified >= t.modified)"
    " AND (t.raw IS DISTINCT FROM excluded.raw OR t.deleted_at IS NOT NULL)"
)
# Newer-only for sync feeds: a higher Exact Timestamp, and a changed value in a typed column (`{changed}`, filled
# in per table by `upsert_payload`). Exact also bumps the Timestamp for fields we do not select, and an action's
# read-back row comes back from the sync feed with its real Timestamp and the same values (numbers may arrive as
# strings there): such a row is left as it is, so it counts as unchanged and notifies nobody. A stored Timestamp
# of 0 is a reset (a moved division's full resync): every row is rewritten with its new Timestamp.
NEWER_BY_TIMESTAMP = "t.timestamp < excluded.timestamp AND ({changed} OR t.deleted_at IS NOT NULL OR t.timestamp = 0)"

Rank = tuple[int, int, datetime | None]  # (header row first, Timestamp, Modified): which duplicate wins
# A hook runs after rows of these header ids were written or marked deleted (derived totals).
Hook = Callable[[Session, int, set[Any]], None]
# A hook that sees a page's records of the entity's first table before they are written.
BeforeHook = Callable[[Session, int, list[Record]], None]


def name_key(*parts: object) -> uuid.UUID:
    """The `id` of a row whose Exact key is not one GUID: a UUIDv5 of its key values joined by '|'."""
    return uuid.uuid5(KEY_NAMESPACE, "|".join("" if p is None else str(p) for p in parts))


@dataclass(frozen=True)
class PreparedPage:
    """A page ready for SQL: per output table its records (newest per key) and their upsert parameter."""

    records: dict[str, list[Record]]
    payloads: dict[str, str]  # table -> `records_payload` of its records, for each table that has some
    max_timestamp: int  # the page's cursor value (see EntityWriter._top)


@dataclass(frozen=True)
class TablePlan:
    output: Output
    table: Table
    key: tuple[str, ...]  # where the key values are in a converted row
    columns: tuple[tuple[str, str], ...]  # (record column, converted-row name) pairs besides the common ones
    raw_fields: frozenset[str] | None  # header tables keep only their own fields in raw; None: the whole row
    header_link: str | None  # lines of a header/line feed: the column naming their header (deletions follow it)
    guid_key: bool  # `id` is the one key field's GUID; else a name-based UUID (and `exact_id` for GUID-first)

    @property
    def decl(self) -> TableDecl:
        return self.output.table


class EntityWriter:
    """Compiled once per entity: converts pages and writes them, applies its deletions."""

    def __init__(
        self, entity: Entity, tables: Mapping[str, Table], hook: Hook | None = None, before: BeforeHook | None = None
    ) -> None:
        self.entity = entity
        self.hook = hook
        self.before = before
        declared = {f.exact: f for f in entity_fields(entity)}
        extra: dict[str, Kind] = {}
        if entity.strategy is Strategy.SYNC:
            extra["Timestamp"] = Kind.BIGINT
        if entity.division_field:
            extra[entity.division_field] = Kind.INT
        for table in entity.tables:
            for name in table.key:
                if name not in declared:
                    extra[name] = Kind.GUID
        self._convert = compile_converter(entity, extra)
        self._row_key = entity.row_key
        self._row_key_at = declared[self._row_key].column if self._row_key in declared else self._row_key
        self._line_number = declared["LineNumber"].column if "LineNumber" in declared else None
        self.plans = [
            self._plan(output, tables[output.table.name], declared, entity.header_of) for output in entity.outputs
        ]
        self._newer = NEWER_BY_TIMESTAMP if entity.strategy is Strategy.SYNC else NEWER_BY_MODIFIED

    def _plan(self, output: Output, table: Table, declared: Mapping[str, Any], header_of: str | None) -> TablePlan:
        decl = output.table
        key = tuple(declared[name].column if name in declared else name for name in decl.key)
        guid_key = not decl.composite and (decl.key[0] not in declared or declared[decl.key[0]].kind is Kind.GUID)
        columns = tuple((f.column, f.column) for f in decl.fields if f.column != "modified")
        if decl.composite:
            columns += (("exact_id", key[0]),)
        raw_fields = None
        if output.split.header_of:
            raw_fields = frozenset({"Timestamp", *decl.key, *(f.exact for f in decl.fields)})
        link = None
        if header_of and not output.split.header_of and header_of in declared:
            link = declared[header_of].column
        return TablePlan(output, table, key, columns, raw_fields, link, guid_key)

    # pages ---------------------------------------------------------------------------------------------------
    def convert(self, rows: Sequence[Row], division: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(converted, raw) per row; a bad row fails the page naming the row and the field."""
        converted = []
        convert = self._convert
        division_field = self.entity.division_field
        sync = self.entity.strategy is Strategy.SYNC
        for row in rows:
            try:
                values = convert(row)
            except AttributeError:
                raise MalformedResponseError(
                    f"{self.entity.name}: expected a JSON object per row, got {type(row).__name__}"
                ) from None
            except MalformedResponseError as exc:
                raise MalformedResponseError(f"{self.entity.name} row {row.get(self._row_key)!r}: {exc}") from None
            if values[self._row_key_at] is None:
                raise self._bad(row, f"field {self._row_key} is missing or null")
            if sync:
                timestamp = values["Timestamp"]
                if timestamp is None:
                    raise self._bad(row, "field Timestamp is missing or null")
                if timestamp < 0:
                    raise self._bad(row, "field Timestamp is negative")
            if division_field is not None:
                found = values[division_field]
                if found is not None and found != division:
                    raise self._bad(row, f"Division {found} in a response for division {division}")
            raw = dict(row)
            raw.pop("__metadata", None)
            converted.append((values, raw))
        return converted

    def _bad(self, row: Row, message: str) -> MalformedResponseError:
        return MalformedResponseError(f"{self.entity.name} row {row.get(self._row_key)!r}: {message}")

    def records(self, rows: Sequence[Row], division: int) -> dict[str, list[Record]]:
        """The records of one page per output table (newest per key), before any SQL."""
        converted = self.convert(rows, division)
        return {plan.decl.name: self._records(plan, converted, division) for plan in self.plans}

    def _records(
        self, plan: TablePlan, converted: list[tuple[dict[str, Any], dict[str, Any]]], division: int
    ) -> list[Record]:
        """The newest row per key, then a record of each (a header table's rows mostly lose to a newer one, so
        records are built for the winners only)."""
        split = plan.output.split
        line_number = self._line_number
        newest: dict[Any, tuple[Rank, dict[str, Any], dict[str, Any]]] = {}
        for values, raw in converted:
            header_row = 1 if line_number is not None and values[line_number] == 0 else 0
            if split.lines_only and header_row:
                continue
            if split.where is not None:
                name, wanted = split.where
                if str(values[snake(name)]) != wanted:
                    continue
            key = self._key(plan, values)
            if key is None:
                raise MalformedResponseError(
                    f"{self.entity.name} row {raw.get(self._row_key)!r}: field {plan.decl.key[0]} is missing or null"
                )
            rank: Rank = (header_row if split.header_of else 0, values.get("Timestamp") or 0, values.get("modified"))
            seen = newest.get(key)
            if seen is None or _newer(rank, seen[0]):
                newest[key] = (rank, values, raw)
        keep = plan.raw_fields
        records = []
        for key, (_, values, raw) in newest.items():
            record = {
                "division": division,
                "id": key,
                "timestamp": values.get("Timestamp"),
                "modified": values.get("modified"),
                "raw": raw if keep is None else {k: v for k, v in raw.items() if k in keep},
            }
            for column, source in plan.columns:
                record[column] = values[source]
            records.append(record)
        return records

    def _key(self, plan: TablePlan, values: Mapping[str, Any]) -> uuid.UUID | str | None:
        if plan.guid_key:
            found: uuid.UUID | str | None = values[plan.key[0]]
            return found
        parts = [values[name] for name in plan.key]
        if parts[0] is None:
            return None
        return name_key(*parts)

    def prepare(self, division: int, rows: Sequence[Row]) -> PreparedPage:
        """Everything of a page that needs no database: converted, deduplicated and serialized per table."""
        by_table = self.records(rows, division)
        payloads = {name: records_payload(records) for name, records in by_table.items() if records}
        return PreparedPage(by_table, payloads, self._top(by_table))

    def write_page(
        self, session: Session, division: int, rows: Sequence[Row], seen: dict[str, set[Any]] | None = None
    ) -> PageResult:
        """Upsert a page; `seen` (a snapshot's or a reconciliation's) collects the keys written per table."""
        return self.write_prepared(session, division, self.prepare(division, rows), seen)

    def write_prepared(
        self, session: Session, division: int, page: PreparedPage, seen: dict[str, set[Any]] | None = None
    ) -> PageResult:
        """Upsert a prepared page (see `write_page`)."""
        by_table = page.records
        if seen is not None:
            for name, records in by_table.items():
                seen.setdefault(name, set()).update(record["id"] for record in records)
        if self.before is not None:
            self.before(session, division, by_table[self.plans[0].decl.name])
        inserted = updated = 0
        for plan in self.plans:
            records = by_table[plan.decl.name]
            if records:
                added, changed = upsert_payload(
                    session, plan.table, tuple(records[0]), page.payloads[plan.decl.name], self._newer
                )
                inserted += added
                updated += changed
        if self.hook is not None:
            headers = self.plans[0]
            if headers.output.split.header_of:
                self.hook(session, division, {record["id"] for record in by_table[headers.decl.name]})
        return PageResult(inserted, updated, 0, page.max_timestamp)

    def _top(self, by_table: Mapping[str, list[Record]]) -> int:
        """The page's cursor value: the highest Timestamp; for a `Modified` feed the newest Modified (epoch ms)."""
        records = [record for found in by_table.values() for record in found]
        if self.entity.strategy is Strategy.SYNC:
            return max((record["timestamp"] for record in records), default=0)
        stamps = [record["modified"] for record in records if record["modified"] is not None]
        return int(max(stamps).timestamp() * 1000) if stamps else 0

    # deletions -----------------------------------------------------------------------------------------------
    def apply_deletions(self, session: Session, division: int, deletions: Sequence[Deletion]) -> int:
        """Mark the rows a page of sync/Deleted names, in every table of the entity. A key may name a row (its
        `id`, or Exact's ID of a composite-key row) or, for line tables, their header: both are applied, since
        Exact does not say which key an EntityType of a header/line feed carries."""
        if not deletions:
            return 0
        params = deletion_params(division, deletions)
        marked = 0
        touched: set[Any] = set()
        for plan in self.plans:
            match = ["t.id = d.key"]
            if plan.decl.composite and plan.guid_key is False and "exact_id" in dict(plan.columns):
                match.append("t.exact_id = d.key")
            if plan.header_link is not None:
                match.append(f't."{plan.header_link}" = d.key')
            returning = f't."{plan.header_link}"' if plan.header_link else "t.id"
            stmt = text(mark_deleted_sql(plan.table.name, " OR ".join(match), returning)).bindparams(*DELETION_BINDS)
            found = session.scalars(stmt, params).all()
            marked += len(found)
            if plan.header_link:
                touched.update(found)
        if self.hook is not None and touched:
            self.hook(session, division, touched)
        return marked

    def mark_missing(self, session: Session, division: int, seen: Mapping[str, set[Any]]) -> int:
        """End of a complete listing (a snapshot, a reconciliation): mark the division's live rows it did not list.
        A table the listing never reached (a feed with no header rows at all) is left alone."""
        marked = 0
        for plan in self.plans:
            if plan.decl.name not in seen:
                continue
            stmt = text(
                f'UPDATE "{plan.table.name}" SET deleted_at = now(), synced_at = now() '
                "WHERE division = :division AND deleted_at IS NULL AND NOT (id = ANY(CAST(:seen AS uuid[])))"
            )
            keys = [str(key) for key in seen[plan.decl.name]]
            result = session.execute(stmt, {"division": division, "seen": keys})
            marked += cast(CursorResult[Any], result).rowcount
        return marked


def _newer(rank: Rank, seen: Rank) -> bool:
    if rank[:2] != seen[:2]:
        return rank[:2] > seen[:2]
    return rank[2] is not None and (seen[2] is None or rank[2] > seen[2])
