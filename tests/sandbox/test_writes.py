"""The sandbox's writes behave as the catalog's write quirks say, for every document an action writes: Exact's
error envelope for a missing required header or line field, a 201 echo where all but the key is null (its key in
`__metadata.uri` as `guid'...'`), 204 with no body on PUT and DELETE, and the writes in the sync feeds (and
sync/Deleted)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from syncs.sandbox.documents import SHAPES
from syncs.sandbox.state import SandboxConfig, SandboxState
from tests.sandbox.conftest import FIRST, follow
from tests.support.clock import FakeClock

G = str(uuid.uuid4())


@dataclass(frozen=True)
class Doc:
    resource: str
    key: str
    header: dict[str, Any]
    required: str  # a required header field
    line: dict[str, Any]
    line_required: str
    feed: str  # where a sync reads it: a sync endpoint (Timestamp) or the standard one (Modified)
    select: str


DOCS = [
    Doc("salesorder/SalesOrders", "OrderID", {"OrderedBy": G, "Remarks": "m"}, "OrderedBy",
        {"Item": G, "Quantity": 2, "NetPrice": 5}, "Item", "sync/SalesOrder/SalesOrderHeaders", "ID,AmountDC"),
    Doc("crm/Quotations", "QuotationID", {"OrderAccount": G}, "OrderAccount",
        {"Item": G, "Quantity": 2, "NetPrice": 5}, "Item", "sync/CRM/QuotationHeaders", "ID,AmountDC"),
    Doc("purchaseorder/PurchaseOrders", "PurchaseOrderID", {"Supplier": G}, "Supplier",
        {"Item": G, "QuantityInPurchaseUnits": 2, "NetPrice": 5}, "QuantityInPurchaseUnits",
        "sync/PurchaseOrder/PurchaseOrders", "PurchaseOrderID,LineNumber,AmountDC"),
    Doc("purchaseentry/PurchaseEntries", "EntryID", {"Journal": "60", "Supplier": G}, "Journal",
        {"GLAccount": G, "AmountFC": 10}, "AmountFC", "purchaseentry/PurchaseEntries", "EntryID,AmountDC"),
]  # fmt: skip
LINES = {
    "salesorder/SalesOrders": "SalesOrderLines", "crm/Quotations": "QuotationLines",
    "purchaseorder/PurchaseOrders": "PurchaseOrderLines", "purchaseentry/PurchaseEntries": "PurchaseEntryLines",
}  # fmt: skip


def _feed(api: httpx.Client, doc: Doc, key: str) -> list[dict[str, Any]]:
    """The document's rows in the feed a sync reads."""
    if doc.feed.startswith("sync/"):
        params = {"$filter": "Timestamp gt 0L", "$select": f"Timestamp,{doc.key},{doc.select}"}
    else:
        params = {"$filter": "Modified ge datetime'2000-01-01T00:00:00'", "$select": f"Modified,{doc.select}"}
    rows = [row for page in follow(api, f"/api/v1/{FIRST}/{doc.feed}", params) for row in page]
    return [row for row in rows if row.get(doc.key) == key or row.get("ID") == key]


def _refused(response: httpx.Response, text: str) -> None:
    assert response.status_code == 400, response.text
    assert text in response.json()["error"]["message"]["value"]


@pytest.mark.parametrize("doc", DOCS, ids=[doc.resource for doc in DOCS])
def test_a_document_write_as_exact_answers_it(api: httpx.Client, doc: Doc) -> None:
    url = f"/api/v1/{FIRST}/{doc.resource}"
    lines = LINES[doc.resource]
    valid = {**doc.header, lines: [doc.line, doc.line]}
    _refused(api.post(url, json={**valid, doc.required: None}), doc.required)
    _refused(api.post(url, json={**valid, lines: [{**doc.line, doc.line_required: None}]}), doc.line_required)
    _refused(api.post(url, json=doc.header), lines)

    created = api.post(url, json=valid)
    assert created.status_code == 201, created.text
    echo = created.json()["d"]
    key = echo[doc.key]
    assert echo["__metadata"]["uri"].endswith(f"(guid'{key}')")
    assert {k for k, v in echo.items() if v is not None} == {doc.key, "__metadata"}  # mostly null (W2)

    stored = api.get(f"{url}(guid'{key}')", params={"$expand": lines}).json()["d"]
    assert stored["AmountDC"] == 20.0 and len(stored[lines]["results"]) == 2
    before = _feed(api, doc, key)
    assert before and all(row["AmountDC"] == 20.0 for row in before if row.get("LineNumber") in (None, 0))

    changed = api.put(f"{url}(guid'{key}')", json={"YourRef": "changed"})
    assert changed.status_code == 204 and changed.content == b""
    assert api.get(f"{url}(guid'{key}')").json()["d"]["YourRef"] == "changed"
    after = _feed(api, doc, key)
    if doc.feed.startswith("sync/"):  # the change is in the feed again, with a newer row version
        assert min(row["Timestamp"] for row in after) > max(row["Timestamp"] for row in before)
    found = api.get(url, params={"$filter": f"{doc.key} eq guid'{key}'"}).json()["d"]["results"]
    assert [record[doc.key] for record in found] == [key]


def test_a_deleted_contact_answers_204_and_shows_in_sync_deleted(api: httpx.Client) -> None:
    url = f"/api/v1/{FIRST}/crm/Contacts"
    _refused(api.post(url, json={"Account": G, "FirstName": "Ada"}), "LastName")
    key = api.post(url, json={"Account": G, "FirstName": "Ada", "LastName": "Lovelace"}).json()["d"]["ID"]
    gone = api.delete(f"{url}(guid'{key}')")
    assert gone.status_code == 204 and gone.content == b""
    assert api.get(f"{url}(guid'{key}')").status_code == 404
    params = {"$filter": "Timestamp gt 0L", "$select": "Timestamp,EntityKey,EntityType"}
    deleted = [row for page in follow(api, f"/api/v1/{FIRST}/sync/Deleted", params) for row in page]
    assert [(row["EntityKey"], row["EntityType"]) for row in deleted] == [(key, 5)]


def test_the_same_writes_on_two_starts_make_the_same_keys() -> None:
    """Created keys are name-based on a counter: a restarted sandbox given the same writes has the same data."""
    shape = SHAPES["salesorder/salesorders"]
    made = []
    for state in (SandboxState(SandboxConfig(), clock=FakeClock()) for _ in range(2)):
        order = state.create_document(FIRST, shape, {"OrderedBy": G, "SalesOrderLines": [{"Item": G}]})
        contact = state.create_record(FIRST, "contacts", FirstName="Ada")
        lines = [line["ID"] for line in order["SalesOrderLines"]["results"]]
        made.append((order["OrderID"], lines, contact["ID"], [j["Type"] for j in state.records(FIRST, "journals")]))
    assert made[0] == made[1]
    assert made[0][3] == [20, 22, 12, 10, 90, 21]  # one sales and one purchase journal to look up


def test_an_invoice_line_given_its_unit_price_gets_the_net_price_and_amounts_exact_computes(api: httpx.Client) -> None:
    url = f"/api/v1/{FIRST}/salesinvoice/SalesInvoices"
    lines = [{"Item": G, "Quantity": 2, "UnitPrice": 10}, {"Item": G, "Quantity": 1, "UnitPrice": 8, "NetPrice": 6}]
    key = api.post(url, json={"OrderedBy": G, "Journal": "70", "SalesInvoiceLines": lines}).json()["d"]["InvoiceID"]
    stored = api.get(f"{url}(guid'{key}')", params={"$expand": "SalesInvoiceLines"}).json()["d"]
    found = [(line["NetPrice"], line["AmountFC"], line["AmountDC"]) for line in stored["SalesInvoiceLines"]["results"]]
    assert found == [(10, 20.0, 20.0), (6, 6.0, 6.0)]  # a net price given is kept (a discount applied)
    assert stored["AmountFCExclVat"] == 26.0
