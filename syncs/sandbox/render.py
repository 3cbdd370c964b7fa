"""Turn division records into the rows of Exact's sync endpoints, one page at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncs.sandbox.catalog import EntityStore
from syncs.sandbox.division import DivisionData, Record
from syncs.sandbox.fields import ACCOUNT_FIELDS, DELETED_FIELDS, INVOICE_ROW_FIELDS, LINE_FIELDS
from syncs.sandbox.synclog import SyncLog

RowBuilder = Callable[[DivisionData, str, int, list[str]], Record]


def _account_row(div: DivisionData, key: str, ts: int, select: list[str]) -> Record:
    record = div.accounts[key]
    row = {name: record[name] for name in select}
    if "IsSales" in row and key in div.quirky:
        row["IsSales"] = "true" if record["IsSales"] else "false"
    return row


def _invoice_row(div: DivisionData, key: str, ts: int, select: list[str]) -> Record:
    line = div.lines[key]
    header = div.invoices[line["InvoiceID"]]
    row: Record = {}
    for name in select:
        if name in LINE_FIELDS:
            row[name] = line[name]
        elif name == "Timestamp":
            row[name] = ts
        elif name == "Modified":
            row[name] = line["Modified"] if line["Timestamp"] >= header["Timestamp"] else header["Modified"]
        else:
            row[name] = header[name]
    if "Quantity" in row and key in div.quirky and row["Quantity"] is not None:
        row["Quantity"] = f"{float(row['Quantity']):.2f}"
    return row


def _deleted_row(div: DivisionData, key: str, ts: int, select: list[str]) -> Record:
    record = div.deletions[key]
    return {name: record[name] for name in select}


@dataclass(frozen=True)
class SyncEntity:
    """One sync endpoint: its URL tail, its rows' fields and where the rows come from."""

    path: str
    type_name: str
    fields: frozenset[str]
    log: Callable[[DivisionData], SyncLog]
    build: RowBuilder
    key_name: str = "ID"


SYNC_ENTITIES: dict[str, SyncEntity] = {
    e.path.lower(): e
    for e in (
        SyncEntity(
            "CRM/Accounts",
            "Exact.Web.Api.Models.Sync.CRM.Account",
            ACCOUNT_FIELDS,
            lambda d: d.account_log,
            _account_row,
        ),
        SyncEntity(
            "SalesInvoice/SalesInvoices",
            "Exact.Web.Api.Models.Sync.SalesInvoice.SalesInvoice",
            INVOICE_ROW_FIELDS,
            lambda d: d.line_log,
            _invoice_row,
        ),
        SyncEntity(
            "Deleted",
            "Exact.Web.Api.Models.Sync.Deleted",
            DELETED_FIELDS,
            lambda d: d.deleted_log,
            _deleted_row,
        ),
    )
}


@dataclass
class Page:
    rows: list[Record]
    next_seq: int | None  # the skiptoken to continue after, None on the last page


def sync_page(
    div: DivisionData,
    entity: SyncEntity,
    select: list[str],
    after_ts: int,
    after_seq: int,
    limit: int,
    uri_prefix: str,
) -> Page:
    """At most `limit` rows with Timestamp > after_ts, continuing after skiptoken `after_seq`."""
    rows: list[Record] = []
    last_seq = 0
    for ts, seq, key in entity.log(div).scan(after_ts, after_seq):
        if len(rows) == limit:
            return Page(rows, last_seq)
        row: dict[str, Any] = {
            "__metadata": {"uri": f"{uri_prefix}(guid'{key}')", "type": entity.type_name},
        }
        row.update(entity.build(div, key, ts, select))
        rows.append(row)
        last_seq = seq
    return Page(rows, None)


def catalog_page(store: EntityStore, select: list[str], after_ts: int, after_seq: int, limit: int, uri: str) -> Page:
    """A sync endpoint of a generated entity: like `sync_page`, from the entity's own change log."""
    rows: list[Record] = []
    last_seq = 0
    type_name = f"Exact.Web.Api.Models.{store.entity.endpoint.replace('/', '.')}"
    for _ts, seq, key in store.log.scan(after_ts, after_seq):
        if len(rows) == limit:
            return Page(rows, last_seq)
        record = store.records[key]
        row: Record = {"__metadata": {"uri": f"{uri}(guid'{key}')", "type": type_name}}
        row.update({name: record.get(name) for name in select})
        rows.append(row)
        last_seq = seq
    return Page(rows, None)
