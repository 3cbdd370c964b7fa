"""sync/SalesInvoice/SalesInvoices -> `sales_invoices` + `sales_invoice_lines`.

The sync endpoint sends ONE ROW PER INVOICE LINE: `ID` is the line's key, `InvoiceID` the invoice's, and the
header fields repeat on every row. A page is split into line records and header records (one per InvoiceID,
taken from the row with the highest Timestamp). The header's amounts are the sums over its live lines,
recomputed in SQL for the invoices a page touched, inside the page's transaction.

Header `description` stays NULL: a sync row's `Description` is the line's, and the header's own description is
not part of the sync resource. Header `raw` is the producing row without the line-only fields; line `raw` is
the whole row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import cast
from uuid import UUID

from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Uuid

from models.synced import SalesInvoice, SalesInvoiceLine
from syncs.entities.base import (
    DELETION_BINDS,
    Deletion,
    EntitySpec,
    PageResult,
    Record,
    Row,
    RowReader,
    deletion_params,
    mark_deleted_sql,
    upsert_newer,
)
from syncs.exact.values import without_metadata

NAME = "sales_invoices"
ENDPOINT = "sync/SalesInvoice/SalesInvoices"
DELETED_ENTITY_TYPE = 13

HEADER_FIELDS = (
    "InvoiceID", "InvoiceNumber", "InvoiceDate", "DueDate", "OrderDate", "InvoiceTo", "OrderedBy",
    "DeliverTo", "Journal", "Currency", "YourRef", "PaymentCondition", "AmountFCExclVat", "Status", "Type",
    "Modified", "Division", "Timestamp",
)  # fmt: skip
LINE_FIELDS = (
    "ID", "LineNumber", "Item", "ItemCode", "Description", "Quantity", "UnitPrice", "NetPrice",
    "AmountDC", "AmountFC", "VATAmountDC", "VATAmountFC", "VATCode", "VATPercentage", "GLAccount",
)  # fmt: skip
FIELDS = LINE_FIELDS + HEADER_FIELDS
_LINE_ONLY = frozenset(LINE_FIELDS)

HEADERS = cast(Table, SalesInvoice.__table__)
LINES = cast(Table, SalesInvoiceLine.__table__)

# `sales_invoice_lines` has no vat_amount_fc column; the line's VATAmountFC is read from its raw row
# (validated as a number when the page was mapped).
_RECOMPUTE_TOTALS = text(
    # A correlated subquery per invoice keeps to the invoice_id index even when the planner's statistics are
    # stale (a join over unnest(:ids) made it scan every line on every page, slowing pages as the table grew).
    """
    UPDATE sales_invoices AS si
    SET (amount_dc, amount_fc, vat_amount_dc, vat_amount_fc) = (
        SELECT COALESCE(sum(l.amount_dc), 0), COALESCE(sum(l.amount_fc), 0), COALESCE(sum(l.vat_amount_dc), 0),
               COALESCE(sum(CAST(l.raw ->> 'VATAmountFC' AS numeric)), 0)
        FROM sales_invoice_lines AS l
        WHERE l.division = si.division AND l.invoice_id = si.id AND l.deleted_at IS NULL
    )
    WHERE si.division = :division AND si.id = ANY(:ids) AND si.deleted_at IS NULL
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid())))


def recompute_totals(session: Session, division: int, invoice_ids: Collection[UUID]) -> None:
    """Set each live invoice's amounts to the sums over its live lines (0 when none is left)."""
    if invoice_ids:
        session.execute(_RECOMPUTE_TOTALS, {"division": division, "ids": sorted(invoice_ids)})


def map_line(row: Row, division: int) -> Record:
    r = RowReader(NAME, row)
    r.number("VATAmountFC")  # only stored in raw, but summed from there: refuse a non-number now
    return {
        "id": r.key("ID"),
        "division": r.division(division),
        "timestamp": r.timestamp(),
        "modified": r.instant("Modified"),
        "invoice_id": r.key("InvoiceID"),
        "line_number": r.integer("LineNumber"),
        "item": r.guid("Item"),
        "item_code": r.text("ItemCode"),
        "description": r.text("Description"),
        "quantity": r.number("Quantity"),
        "unit_price": r.number("UnitPrice"),
        "net_price": r.number("NetPrice"),
        "amount_dc": r.number("AmountDC"),
        "amount_fc": r.number("AmountFC"),
        "vat_amount_dc": r.number("VATAmountDC"),
        "vat_code": r.text("VATCode"),
        "vat_percentage": r.number("VATPercentage"),
        "gl_account": r.guid("GLAccount"),
        "raw": without_metadata(dict(row)),
    }


def map_header(row: Row, line: Record) -> Record:
    """The invoice record of a sync row, sharing what its line record already read."""
    r = RowReader(NAME, row)
    return {
        "id": line["invoice_id"],
        "division": line["division"],
        "timestamp": line["timestamp"],
        "modified": line["modified"],
        "invoice_number": r.integer("InvoiceNumber"),
        "invoice_date": r.day("InvoiceDate"),
        "due_date": r.day("DueDate"),
        "order_date": r.day("OrderDate"),
        "invoice_to": r.guid("InvoiceTo"),
        "ordered_by": r.guid("OrderedBy"),
        "deliver_to": r.guid("DeliverTo"),
        "journal": r.text("Journal"),
        "currency": r.text("Currency"),
        "your_ref": r.text("YourRef"),
        "payment_condition": r.text("PaymentCondition"),
        "amount_fc_excl_vat": r.number("AmountFCExclVat"),
        "status": r.integer("Status"),
        "type": r.integer("Type"),
        "raw": {key: value for key, value in line["raw"].items() if key not in _LINE_ONLY},
    }


def map_page(rows: Sequence[Row], division: int) -> tuple[list[Record], list[Record]]:
    """(headers, lines): a line from every row; each invoice's header from its newest row only."""
    lines: list[Record] = []
    newest: dict[UUID, tuple[Row, Record]] = {}
    for row in rows:
        line = map_line(row, division)
        lines.append(line)
        seen = newest.get(line["invoice_id"])
        if seen is None or line["timestamp"] > seen[1]["timestamp"]:
            newest[line["invoice_id"]] = (row, line)
    return [map_header(row, line) for row, line in newest.values()], lines


def write_page(session: Session, division: int, rows: Sequence[Row]) -> PageResult:
    headers, lines = map_page(rows, division)
    h_inserted, h_updated = upsert_newer(session, HEADERS, headers)
    l_inserted, l_updated = upsert_newer(session, LINES, lines)
    recompute_totals(session, division, {header["id"] for header in headers})
    top = max((line["timestamp"] for line in lines), default=0)
    return PageResult(h_inserted + l_inserted, h_updated + l_updated, 0, top)


# Exact does not say whether an EntityType 13 key is an InvoiceID or a line ID, so both readings are applied:
# a key matching an invoice marks it and all its lines; a key matching a line marks that line.
_MARK_HEADERS = text(mark_deleted_sql("sales_invoices", "t.id = d.key", "t.id")).bindparams(*DELETION_BINDS)
_MARK_LINES = text(
    mark_deleted_sql("sales_invoice_lines", "t.id = d.key OR t.invoice_id = d.key", "t.invoice_id")
).bindparams(*DELETION_BINDS)


def apply_deletions(session: Session, division: int, deletions: Sequence[Deletion]) -> int:
    if not deletions:
        return 0
    params = deletion_params(division, deletions)
    headers = session.execute(_MARK_HEADERS, params).all()
    lines = session.scalars(_MARK_LINES, params).all()
    recompute_totals(session, division, set(lines))  # invoices that lost a line but live on
    return len(headers) + len(lines)


SPEC = EntitySpec(
    name=NAME,
    endpoint=ENDPOINT,
    fields=FIELDS,
    primary_key="ID",
    deletion_entity_types=frozenset({DELETED_ENTITY_TYPE}),
    write_page=write_page,
    apply_deletions=apply_deletions,
)
