"""Field lists of the entities the sandbox serves, with the defaults a new record gets."""

from __future__ import annotations

from typing import Any

ACCOUNT_DEFAULTS: dict[str, Any] = {
    "Code": None,
    "Name": None,
    "Status": "C",
    "Email": None,
    "Phone": None,
    "Website": None,
    "AddressLine1": None,
    "Postcode": None,
    "City": None,
    "Country": None,
    "VATNumber": None,
    "ChamberOfCommerce": None,
    "IsSales": True,
    "IsSupplier": False,
    "IsPurchase": False,
    "Blocked": False,
    "Remarks": None,
}
ACCOUNT_FIELDS = frozenset({"ID", *ACCOUNT_DEFAULTS, "Created", "Modified", "Division", "Timestamp"})

HEADER_DEFAULTS: dict[str, Any] = {
    "InvoiceNumber": None,
    "InvoiceDate": None,
    "DueDate": None,
    "OrderDate": None,
    "InvoiceTo": None,
    "OrderedBy": None,
    "DeliverTo": None,
    "Journal": "70",
    "Currency": "EUR",
    "YourRef": None,
    "Description": None,
    "Remarks": None,
    "PaymentCondition": "00",
    "Status": 20,
    "Type": 8020,
    "Document": None,  # a document attached to the invoice (PUT by attach-a-file)
}
HEADER_FIELDS = frozenset(
    {"InvoiceID", *HEADER_DEFAULTS, "AmountFCExclVat", "Created", "Modified", "Division", "Timestamp"}
)

LINE_DEFAULTS: dict[str, Any] = {
    "LineNumber": None,
    "Item": None,
    "ItemCode": None,
    "Description": None,
    "Quantity": 1.0,
    "UnitPrice": None,
    "NetPrice": None,  # Exact's: the unit price less any discount; given alone, the unit price
    "AmountDC": None,
    "AmountFC": None,
    "VATAmountDC": None,
    "VATAmountFC": None,
    "VATCode": "2",
    "VATPercentage": 0.21,
    "GLAccount": None,
}
LINE_FIELDS = frozenset({"ID", "InvoiceID", *LINE_DEFAULTS})
# Fields of a sync/SalesInvoice/SalesInvoices row: the line's own plus its header's, repeated.
INVOICE_ROW_FIELDS = LINE_FIELDS | HEADER_FIELDS

DELETED_FIELDS = frozenset({"ID", "Timestamp", "DeletedBy", "DeletedDate", "Division", "EntityKey", "EntityType"})
ENTITY_TYPE_ACCOUNTS = 2
ENTITY_TYPE_SALES_INVOICES = 13

DIVISION_FIELDS = frozenset(
    {
        "Code",
        "Description",
        "Current",
        "Status",
        "BlockingStatus",
        "Hid",
        "IsMainDivision",
        "Customer",
        "CustomerCode",
        "CustomerName",
        "Country",
        "Currency",
        "Created",
        "Modified",
        "Email",
        "Legislation",
        "StartDate",
        "TemplateCode",
        "VATNumber",
        "Website",
        "City",
        "Phone",
    }
)


def complete_line(line: dict[str, Any]) -> None:
    """Derive what Exact computes for a line: the net price from the unit price (or the reverse), amounts and VAT
    from quantity and net price."""
    quantity = float(line["Quantity"] or 0)
    if line.get("NetPrice") is None:
        line["NetPrice"] = float(line.get("UnitPrice") or 0)
    net = float(line["NetPrice"])
    if line.get("UnitPrice") is None:
        line["UnitPrice"] = net
    if line.get("AmountFC") is None:
        line["AmountFC"] = round(quantity * net, 2)
    if line.get("AmountDC") is None:
        line["AmountDC"] = line["AmountFC"]
    pct = float(line["VATPercentage"] or 0)
    if line.get("VATAmountFC") is None:
        line["VATAmountFC"] = round(float(line["AmountFC"]) * pct, 2)
    if line.get("VATAmountDC") is None:
        line["VATAmountDC"] = line["VATAmountFC"]
