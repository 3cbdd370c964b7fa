"""One end-to-end pass through the real client stack against the sandbox (the lead adds more)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, SalesInvoice, SalesInvoiceLine
from syncs.engine.streams import SyncCounts, sync_division
from syncs.exact.client import ExactClient
from syncs.sandbox import SandboxServer

DIV = 124132


def test_sync_through_client_and_sandbox(
    sandbox: SandboxServer, exact: ExactClient, db: sessionmaker[Session], connection_id: int
) -> None:
    state = sandbox.state
    first = sync_division(db, exact, connection_id, DIV, ["accounts", "sales_invoices"])
    lines = state.invoice_lines(DIV)
    assert first.inserted == len(state.accounts(DIV)) + len(state.invoices(DIV)) + len(lines) > 0
    with db() as session:
        assert {a.id for a in session.scalars(select(Account))} == {
            uuid.UUID(str(a["ID"])) for a in state.accounts(DIV)
        }
        assert len(session.scalars(select(SalesInvoiceLine)).all()) == len(lines)
        for invoice in state.invoices(DIV):
            stored = session.get_one(SalesInvoice, (DIV, uuid.UUID(str(invoice["InvoiceID"]))))
            expected = sum((Decimal(str(line["AmountDC"])) for line in invoice["Lines"]), Decimal(0))
            assert stored.amount_dc == expected

    calls = exact.api_calls
    assert sync_division(db, exact, connection_id, DIV, ["accounts", "sales_invoices"]) == SyncCounts()
    assert exact.api_calls - calls == 3  # idle run: one call per stream

    account = state.accounts(DIV)[0]
    state.delete_account(DIV, str(account["ID"]))
    invoice = state.invoices(DIV)[0]
    state.delete_invoice(DIV, str(invoice["InvoiceID"]))
    third = sync_division(db, exact, connection_id, DIV, ["accounts", "sales_invoices"])
    assert third.deleted >= 2
    with db() as session:
        assert session.get_one(Account, (DIV, uuid.UUID(str(account["ID"])))).deleted_at is not None
        assert session.get_one(SalesInvoice, (DIV, uuid.UUID(str(invoice["InvoiceID"])))).deleted_at is not None
