from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import SalesInvoice, SalesInvoiceLine
from syncs.entities.registry import ENTITIES
from tests.engine.support import DIVISION, recorded_invoice_rows

write_page = ENTITIES["sales_invoices"].write_page
INV_A = "aaaaaaaa-0000-0000-0000-000000000001"
INV_B = "bbbbbbbb-0000-0000-0000-000000000002"


def line_row(invoice: str, line: int, timestamp: int, amount: str, vat: str, **extra: Any) -> dict[str, Any]:
    """A sync row: one line, with its invoice's header fields repeated."""
    return {
        "__metadata": {"uri": "u", "type": "Exact.Web.Api.Models.SyncSalesInvoice"},
        "ID": f"{invoice[:8]}-{line:04d}-0000-0000-000000000000",
        "InvoiceID": invoice,
        "Timestamp": timestamp,
        "Division": DIVISION,
        "InvoiceNumber": 24700001,
        "InvoiceDate": "/Date(1723420800000)/",
        "Status": 20,
        "Type": 8020,
        "Currency": "EUR",
        "AmountFCExclVat": 99,
        "Modified": "/Date(1725882549703)/",
        "LineNumber": line,
        "Description": f"line {line}",
        "Quantity": 1,
        "NetPrice": amount,
        "AmountDC": amount,
        "AmountFC": amount,
        "VATAmountDC": vat,
        "VATAmountFC": vat,
        "VATPercentage": 0.21,
        **extra,
    }


def totals(session: Session, invoice: str) -> tuple[Any, ...]:
    header = session.get_one(SalesInvoice, (DIVISION, uuid.UUID(invoice)))
    return header.amount_dc, header.amount_fc, header.vat_amount_dc, header.vat_amount_fc


def test_spec() -> None:
    spec = ENTITIES["sales_invoices"]
    assert spec.endpoint == "sync/SalesInvoice/SalesInvoices"
    assert spec.deletion_entity_types == {13}
    assert {"ID", "InvoiceID", "Timestamp", "LineNumber", "AmountDC", "VATAmountFC"} <= set(spec.fields)


def test_recorded_invoice_maps(db: sessionmaker[Session]) -> None:
    rows = recorded_invoice_rows()
    with db.begin() as session:
        result = write_page(session, DIVISION, rows)
    assert (result.inserted, result.updated) == (1 + len(rows), 0)
    with db() as session:
        header = session.get_one(SalesInvoice, (DIVISION, uuid.UUID("a07b5588-4d7d-4872-88f9-30b2d256440d")))
        assert header.invoice_date == date(2024, 8, 12)
        assert header.type == 8023 and header.status == 20 and header.journal == "70"
        assert header.amount_dc == Decimal(1) and header.vat_amount_dc == Decimal(0)
        assert "Description" not in header.raw  # a sync row's Description belongs to the line
        assert "ItemCode" not in header.raw and "LineNumber" not in header.raw
        line = session.scalars(select(SalesInvoiceLine)).one()
        assert (line.item_code, line.description, line.line_number) == ("M", "Marchandises", 1)
        assert line.invoice_id == header.id


def test_page_is_split_into_headers_and_lines_with_totals(db: sessionmaker[Session]) -> None:
    page = [
        line_row(INV_A, 1, 10, "100.00", "21.00"),
        line_row(INV_B, 1, 12, "5", "1.05"),
        line_row(INV_A, 2, 11, "0.10", "0.02", YourRef="newest header"),
    ]
    with db.begin() as session:
        result = write_page(session, DIVISION, page)
    assert (result.inserted, result.updated, result.max_timestamp) == (5, 0, 12)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(SalesInvoice)) == 2
        assert session.scalar(select(func.count()).select_from(SalesInvoiceLine)) == 3
        assert totals(session, INV_A) == (
            Decimal("100.1"),
            Decimal("100.1"),
            Decimal("21.02"),
            Decimal("21.02"),
        )
        assert totals(session, INV_B) == (Decimal(5), Decimal(5), Decimal("1.05"), Decimal("1.05"))
        header = session.get_one(SalesInvoice, (DIVISION, uuid.UUID(INV_A)))
        assert header.timestamp == 11 and header.your_ref == "newest header"
        assert header.amount_fc_excl_vat == Decimal(99)


def test_totals_follow_later_pages_and_ignore_deleted_lines(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        write_page(session, DIVISION, [line_row(INV_A, 1, 10, "100", "21"), line_row(INV_A, 2, 10, "50", "10")])
    with db.begin() as session:  # line 2 changes in a later page; line 1 is not resent
        result = write_page(session, DIVISION, [line_row(INV_A, 2, 20, "70", "14")])
    # The line; the header's own fields did not change (its totals follow the lines through the hook below).
    assert (result.inserted, result.updated) == (0, 1)
    with db.begin() as session:
        assert totals(session, INV_A) == (Decimal(170), Decimal(170), Decimal(35), Decimal(35))
        line_1 = session.scalars(select(SalesInvoiceLine).where(SalesInvoiceLine.__table__.c.line_number == 1)).one()
        line_1.deleted_at = func.now()
    with db.begin() as session:
        write_page(session, DIVISION, [line_row(INV_A, 3, 30, "1", "0")])
    with db() as session:
        assert totals(session, INV_A) == (Decimal(71), Decimal(71), Decimal(14), Decimal(14))


def test_replayed_page_counts_nothing(db: sessionmaker[Session]) -> None:
    page = [line_row(INV_A, 1, 10, "1", "0"), line_row(INV_A, 2, 10, "2", "0")]
    with db.begin() as session:
        write_page(session, DIVISION, page)
    with db.begin() as session:
        again = write_page(session, DIVISION, page)
    assert (again.inserted, again.updated) == (0, 0)
    with db() as session:
        assert totals(session, INV_A)[0] == Decimal(3)
