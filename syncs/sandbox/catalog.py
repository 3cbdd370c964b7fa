"""Every declared entity beyond accounts and sales invoices, served from rows generated from its declaration.

Rows are deterministic: keys are name-based UUIDs of (division, entity, number), values follow from the field's
kind and name, and GUID fields that name another entity (Account, Item, OrderID, ...) point at that entity's
generated rows, so the tables join as real ones do. Creates, updates and deletes go through `CatalogStore`,
which bumps the division's Timestamp, keeps each sync endpoint's change log and writes sync/Deleted rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from syncs.entities.catalog import CATALOG
from syncs.entities.declaration import Entity, Kind, Strategy
from syncs.entities.mapper import entity_fields
from syncs.entities.references import referenced
from syncs.sandbox.dates import exact_date, exact_datetime
from syncs.sandbox.synclog import SyncLog

Record = dict[str, Any]
NAMESPACE = uuid.UUID("0b5c1e9a-5d0e-4a4b-8d8e-9f3c0c2b7a11")
NATIVE = frozenset({"accounts", "sales_invoices"})  # served by the hand-written division data
ROWS_PER_ENTITY = 6
FIRST_DAY = date(2024, 1, 1)
# Generated first, in this order: the entities others refer to. Every other declared entity follows.
REFERENCED_FIRST = (
    "item_groups", "items", "gl_accounts", "employees", "projects", "documents", "contacts", "sales_orders",
    "sales_order_lines", "quotations", "goods_deliveries",
)  # fmt: skip
SERVED_ELSEWHERE = NATIVE | {"exact_divisions"}  # system/Divisions is served with the login's divisions
# One journal of each kind (Exact's Type: 20 sales, 22 purchase, 12 bank, 10 cash, 90 general, 21 return invoice),
# so a division has exactly one sales and one purchase journal for actions to find.
JOURNAL_TYPES = (20, 22, 12, 10, 90, 21)
_TEXT_VALUES = {"Currency": "EUR", "Country": "NL ", "VATCode": "2", "SalesVatCode": "2", "Unit": "pc"}


def served() -> list[Entity]:
    """The entities this module serves: every declared one but those served elsewhere, referenced ones first."""
    rest = [name for name in CATALOG if name not in REFERENCED_FIRST and name not in SERVED_ELSEWHERE]
    return [CATALOG[name] for name in (*REFERENCED_FIRST, *rest)]


def key_field(entity: Entity) -> str:
    return entity.row_key


@dataclass
class EntityStore:
    entity: Entity
    records: dict[str, Record] = field(default_factory=dict)  # by the row's key
    log: SyncLog = field(default_factory=SyncLog)


class CatalogStore:
    """One division's generated entities. Not locked: SandboxState holds the lock around every call."""

    def __init__(self, division: int, bump: Callable[[], int], deleted: Callable[[str, int, float], Record]) -> None:
        self.division = division
        self._bump = bump
        self._deleted = deleted
        self.stores = {entity.name: EntityStore(entity) for entity in served()}
        self._counter = 0

    def store(self, name: str) -> EntityStore:
        try:
            return self.stores[name]
        except KeyError:
            raise KeyError(f"unknown entity {name}") from None

    def by_endpoint(self, endpoint: str) -> EntityStore | None:
        wanted = endpoint.lower()
        return next((s for s in self.stores.values() if s.entity.endpoint.lower() == wanted), None)

    # generation ------------------------------------------------------------------------------------------------
    def seed(self, accounts: list[str], now: float, rows: int = ROWS_PER_ENTITY) -> None:
        for entity in served():
            self.add_generated(entity.name, rows, accounts, now)

    def add_generated(self, name: str, rows: int, accounts: list[str], now: float) -> None:
        """`rows` more generated rows of an entity, numbered on from those it has."""
        store = self.store(name)
        start = len(store.records)
        for n in range(start + 1, start + rows + 1):
            self.create(name, self.generated(store.entity, n, accounts), now)

    def generated(self, entity: Entity, n: int, accounts: list[str]) -> Record:
        """Row number `n` of an entity: values from each field's kind and name, references to generated rows."""
        record: Record = {}
        keys = {name for table in entity.tables for name in table.key}
        for f in entity_fields(entity):
            record[f.exact] = self._value(entity, f.exact, f.kind, n, accounts, f.exact in keys)
        for name in keys - set(record):
            record[name] = self._id(entity.name, name, n)
        if "LineNumber" in record:  # header/line feeds: a header row (LineNumber 0) and two lines per document
            record["LineNumber"] = (n - 1) % 3 if entity.header_of else n
        return record

    def _value(self, entity: Entity, name: str, kind: Kind, n: int, accounts: list[str], key: bool) -> Any:
        if kind is Kind.GUID:
            return self._guid(entity, name, n, accounts, key)
        if kind is Kind.TEXT:
            return _TEXT_VALUES.get(name, f"{name} {n}" if name != "Code" else f"{n:04d}")
        if kind is Kind.INT or kind is Kind.BIGINT:
            return _int_value(entity.name, name, n)
        if kind is Kind.NUMBER:
            return float(n % 3) if "Delivered" in name or "Invoiced" in name else round(n * 12.5, 2)
        if kind is Kind.BOOL:
            return n % 2 == 0
        if kind is Kind.DATE:
            return exact_date(FIRST_DAY + timedelta(days=17 * n))
        return exact_datetime(1_704_067_200 + 86_400 * n)  # DATETIME: days after 2024-01-01

    def _guid(self, entity: Entity, name: str, n: int, accounts: list[str], key: bool) -> str | None:
        if key:  # a header key groups three rows (a header row and two lines) of a header/line feed
            return self._id(entity.name, name, (n + 2) // 3 if name == entity.header_of else n)
        target = referenced(entity.name, name)
        if target is None:
            return self._id(entity.name, name, n)
        if target[0] == "accounts":
            return accounts[n % len(accounts)] if accounts else None
        if target[0] == entity.name:  # OrderID of an order, QuotationID of a quotation: its own key
            return self._id(entity.name, key_field(entity), n)
        rows = list(self.stores[target[0]].records.values())
        return str(rows[n % len(rows)][target[1]]) if rows else None

    def new_key(self, entity: str, name: str) -> str:
        """A key for a created record: name-based on a counter, so the same writes make the same keys."""
        self._counter += 1
        return self._id(entity, f"created:{name}", self._counter)

    def _id(self, entity: str, name: str, n: int) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{self.division}:{entity}:{name}:{n}"))

    # changes ---------------------------------------------------------------------------------------------------
    def create(self, name: str, fields: Record, now: float) -> Record:
        store = self.store(name)
        entity = store.entity
        record = dict(fields)
        key = key_field(entity)
        if not record.get(key):
            record[key] = self.new_key(name, key)
        record.setdefault("Modified", exact_datetime(now))
        return self._stamp(store, record)

    def update(self, name: str, key: str, fields: Record, now: float, accept: tuple[str, ...] = ()) -> Record:
        """Change fields of a row; a name the row lacks is refused unless `accept` names it (write-only fields)."""
        store = self.store(name)
        record = store.records[key]
        unknown = set(fields) - set(record) - set(accept)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        record.update(fields)
        if "Modified" in record:
            record["Modified"] = exact_datetime(now)
        return self._stamp(store, record)

    def delete(self, name: str, key: str, now: float) -> Record:
        store = self.store(name)
        del store.records[key]
        store.log.remove(key)
        types = sorted(store.entity.deleted_types)
        return self._deleted(key, types[0], now) if types else {"EntityKey": key}

    def _stamp(self, store: EntityStore, record: Record) -> Record:
        key = record[key_field(store.entity)]
        if store.entity.strategy is Strategy.SYNC:
            record["Timestamp"] = timestamp = self._bump()
            store.log.touch(key, timestamp)
        store.records[key] = record
        return dict(record)


def _int_value(entity: str, name: str, n: int) -> int:
    if (entity, name) == ("journals", "Type"):
        return JOURNAL_TYPES[(n - 1) % len(JOURNAL_TYPES)]
    if name == "LineType":
        return 20 if n % 2 else 22  # receipts and payments alternate
    if name == "Type":
        return 1 if n % 2 else 2
    if name == "Status":
        return 20  # open
    return n
