"""The sandbox generates and pages through a benchmark-sized data set (speed is measured by the benchmark, not here)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from syncs.sandbox.server import SandboxServer
from tests.sandbox.conftest import SECOND, follow, sync_params

ALL_LINE_FIELDS = (
    "ID,InvoiceID,LineNumber,Item,ItemCode,Description,Quantity,UnitPrice,NetPrice,AmountDC,AmountFC,VATAmountDC,"
    "VATAmountFC,VATCode,VATPercentage,GLAccount,InvoiceNumber,InvoiceDate,DueDate,OrderDate,InvoiceTo,OrderedBy,"
    "DeliverTo,Journal,Currency,YourRef,PaymentCondition,AmountFCExclVat,Status,Type,Modified,Created,Division,"
    "Timestamp"
)


def test_generate_and_sync_100k_lines(make_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = make_sandbox()
    counts = sandbox.state.generate(SECOND, accounts=20000, invoices=25000, lines_per_invoice=4)
    assert counts == {"accounts": 20000, "invoices": 25000, "lines": 100000}
    token = sandbox.state.issue_tokens()["access_token"]
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        url = f"/api/v1/{SECOND}/sync/SalesInvoice/SalesInvoices"
        pages = follow(client, url, sync_params(select=ALL_LINE_FIELDS))
    assert [len(p) for p in pages] == [1000] * 100
    assert len({row["ID"] for page in pages for row in page}) == 100000
