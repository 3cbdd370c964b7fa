from __future__ import annotations

import time
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


def test_generate_and_sync_100k_lines_quickly(make_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = make_sandbox()
    started = time.perf_counter()
    counts = sandbox.state.generate(SECOND, accounts=20000, invoices=25000, lines_per_invoice=4)
    assert counts == {"accounts": 20000, "invoices": 25000, "lines": 100000}
    assert time.perf_counter() - started < 5
    token = sandbox.state.issue_tokens()["access_token"]
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        started = time.perf_counter()
        url = f"/api/v1/{SECOND}/sync/SalesInvoice/SalesInvoices"
        pages = follow(client, url, sync_params(select=ALL_LINE_FIELDS))
        elapsed = time.perf_counter() - started
    assert [len(p) for p in pages] == [1000] * 100
    assert len({row["ID"] for page in pages for row in page}) == 100000
    assert elapsed < 20
