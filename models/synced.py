"""Tables holding Exact Online records. Rows are never hard-deleted: Exact's deletions set `deleted_at`."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

Money = Numeric(20, 6)


class SyncedRecord(Base):
    """Columns every synced table has: Exact's key, division, row version, deletion mark and the raw record."""

    __abstract__ = True

    # Keyed by (division, id): Exact's GUIDs are only promised unique within a division, and one company's rows
    # must never overwrite another's. The key's leading `division` also serves per-division queries.
    division: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    modified: Mapped[datetime | None]
    timestamp: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)
    synced_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Account(SyncedRecord):
    __tablename__ = "accounts"

    code: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(8))
    email: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    website: Mapped[str | None] = mapped_column(Text)
    address_line1: Mapped[str | None] = mapped_column(Text)
    postcode: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(8))
    vat_number: Mapped[str | None] = mapped_column(Text)
    chamber_of_commerce: Mapped[str | None] = mapped_column(Text)
    is_sales: Mapped[bool | None]
    is_supplier: Mapped[bool | None]
    is_purchase: Mapped[bool | None]
    blocked: Mapped[bool | None]
    created: Mapped[datetime | None]


class SalesInvoice(SyncedRecord):
    """One row per invoice (Exact's InvoiceID).

    The sync API sends one row per invoice line, each carrying its line's amounts; `amount_dc`, `amount_fc`,
    `vat_amount_dc` and `vat_amount_fc` here are the sums over the invoice's live lines, recomputed on every page.
    """

    __tablename__ = "sales_invoices"

    invoice_number: Mapped[int | None] = mapped_column(BigInteger)
    invoice_date: Mapped[date | None]
    due_date: Mapped[date | None]
    order_date: Mapped[date | None]
    invoice_to: Mapped[uuid.UUID | None]
    ordered_by: Mapped[uuid.UUID | None]
    deliver_to: Mapped[uuid.UUID | None]
    journal: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(Text)
    your_ref: Mapped[str | None] = mapped_column(Text)
    payment_condition: Mapped[str | None] = mapped_column(String(40))
    amount_dc: Mapped[Decimal | None] = mapped_column(Money)
    amount_fc: Mapped[Decimal | None] = mapped_column(Money)
    amount_fc_excl_vat: Mapped[Decimal | None] = mapped_column(Money)
    vat_amount_dc: Mapped[Decimal | None] = mapped_column(Money)
    vat_amount_fc: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[int | None] = mapped_column(Integer)


class SalesInvoiceLine(SyncedRecord):
    __tablename__ = "sales_invoice_lines"
    __table_args__ = (Index("ix_sales_invoice_lines_division_invoice_id", "division", "invoice_id"),)

    invoice_id: Mapped[uuid.UUID]
    line_number: Mapped[int | None] = mapped_column(Integer)
    item: Mapped[uuid.UUID | None]
    item_code: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal | None] = mapped_column(Money)
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    net_price: Mapped[Decimal | None] = mapped_column(Money)
    amount_dc: Mapped[Decimal | None] = mapped_column(Money)
    amount_fc: Mapped[Decimal | None] = mapped_column(Money)
    vat_amount_dc: Mapped[Decimal | None] = mapped_column(Money)
    vat_code: Mapped[str | None] = mapped_column(String(16))
    vat_percentage: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    gl_account: Mapped[uuid.UUID | None]
