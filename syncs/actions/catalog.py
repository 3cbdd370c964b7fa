"""Every action, declared. Required fields per Exact (shared/exact-entities.md W5, from PIS `#[Exact\\Required]`).

Tenant data is never assumed: journal codes are asked for (`Journal`); nothing here names a code of one tenant.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from syncs.actions.declaration import Action, Kind, Lines, Param, Verb

G, T, INT, N, B, D = Kind.GUID, Kind.TEXT, Kind.INT, Kind.NUMBER, Kind.BOOL, Kind.DATE


def p(name: str, kind: Kind, required: bool = False, **more: object) -> Param:
    return Param(name, kind, required, **more)  # type: ignore[arg-type]


def key_param(action: Action, references: str | None) -> Param:
    return Param(action.key, Kind.GUID, True, references=references, doc="the record's key")


def update_of(create: Action, **changes: Any) -> Action:
    """The update twin of a create: the key is required, every other field optional (a partial PUT)."""
    optional = tuple(dataclasses.replace(param, required=False) for param in create.params)
    params = (key_param(create, create.table), *optional)
    return dataclasses.replace(
        create, name=create.name.replace(".create", ".update"), verb=Verb.UPDATE, params=params, lines=None,
        marker=None, doc=f"Change fields of a record (PUT {create.resource}(guid'...'): 204, then read back).",
        **changes,
    )  # fmt: skip


def by_key(create: Action, verb: Verb) -> Action:
    docs = {Verb.DELETE: "Delete the record (DELETE: 204); its synced row is marked deleted at once.",
            Verb.GET: "Read one record by key, as Exact holds it now."}  # fmt: skip
    return dataclasses.replace(
        create, name=create.name.replace(".create", f".{verb.value}"), verb=verb,
        params=(key_param(create, None),), lines=None, marker=None, doc=docs[verb],
    )  # fmt: skip


ACCOUNT_FIELDS = (
    p("Name", T, True, max_length=50), p("Code", T, max_length=18), p("Status", T, choices=("A", "S", "P", "C")),
    p("Email", T), p("Phone", T), p("Website", T), p("AddressLine1", T), p("Postcode", T), p("City", T),
    p("Country", T, max_length=3), p("VATNumber", T), p("ChamberOfCommerce", T), p("IsSales", B),
    p("IsSupplier", B), p("Blocked", B), p("Remarks", T),
)  # fmt: skip
ACCOUNTS = Action(
    "accounts.create", Verb.CREATE, "crm/Accounts", "ID", ACCOUNT_FIELDS, marker="Remarks", table="accounts",
    doc="Create a customer/supplier account (POST crm/Accounts; the echo is mostly null, so it is read back).",
)  # fmt: skip
CONTACTS = Action(
    "contacts.create", Verb.CREATE, "crm/Contacts", "ID",
    (p("Account", G, True, references="accounts"), p("FirstName", T, True), p("LastName", T, True),
     p("Email", T), p("BusinessPhone", T), p("BusinessMobile", T), p("Title", T), p("Notes", T)),
    marker="Notes", table="contacts", doc="Create a contact person of an account.",
)  # fmt: skip
ITEMS = Action(
    "items.create", Verb.CREATE, "logistics/Items", "ID",
    (p("Code", T, True, max_length=30), p("Description", T, True, max_length=60),
     p("ItemGroup", G, references="item_groups"), p("IsSalesItem", B), p("IsPurchaseItem", B), p("IsStockItem", B),
     p("CostPriceStandard", N), p("SalesVatCode", T), p("Unit", T), p("ExtraDescription", T)),
    marker="Code", table="items", doc="Create an item; its Code (required, unique in Exact) is the marker.",
)  # fmt: skip
SALES_INVOICE_LINES = Lines(
    "SalesInvoiceLines",
    (p("Item", G, references="items"), p("GLAccount", G, references="gl_accounts"), p("Quantity", N),
     p("NetPrice", N), p("UnitPrice", N), p("Description", T), p("VATCode", T)),
    one_of=("Item", "GLAccount"),
)  # fmt: skip
SALES_INVOICES = Action(
    "sales_invoices.create", Verb.CREATE, "salesinvoice/SalesInvoices", "InvoiceID",
    (p("Journal", T, True, doc="a sales journal code of this division (see journals.list)"),
     p("OrderedBy", G, True, references="accounts"), p("InvoiceTo", G, references="accounts"),
     p("DeliverTo", G, references="accounts"), p("InvoiceDate", D), p("OrderDate", D), p("DueDate", D),
     p("Currency", T, max_length=3), p("YourRef", T), p("Description", T), p("Remarks", T),
     p("PaymentCondition", T), p("Type", INT, choices=(8020, 8021, 8023, 8024))),
    lines=SALES_INVOICE_LINES, marker="Remarks", table="sales_invoices", expand="SalesInvoiceLines",
    doc="Create a sales invoice with its lines (Status 20 Open). Journal is asked for, never assumed.",
)  # fmt: skip
SALES_ORDERS = Action(
    "sales_orders.create", Verb.CREATE, "salesorder/SalesOrders", "OrderID",
    (p("OrderedBy", G, True, references="accounts"), p("OrderDate", D), p("DeliveryDate", D), p("YourRef", T),
     p("Description", T), p("Remarks", T), p("Currency", T, max_length=3)),
    lines=Lines("SalesOrderLines", (p("Item", G, True, references="items"), p("Quantity", N), p("NetPrice", N),
                                    p("Description", T), p("VATCode", T))),
    marker="Remarks", table="sales_orders", expand="SalesOrderLines", doc="Create a sales order with lines.",
)  # fmt: skip
PURCHASE_ENTRIES = Action(
    "purchase_entries.create", Verb.CREATE, "purchaseentry/PurchaseEntries", "EntryID",
    (p("Journal", T, True, doc="a purchase journal code of this division (see journals.list)"),
     p("Supplier", G, True, references="accounts"), p("EntryDate", D), p("DueDate", D), p("YourRef", T),
     p("Description", T), p("Currency", T, max_length=3), p("PaymentCondition", T)),
    lines=Lines("PurchaseEntryLines", (p("GLAccount", G, True, references="gl_accounts"), p("AmountFC", N, True),
                                       p("VATCode", T), p("Description", T))),
    marker="Description", table="purchase_entries", expand="PurchaseEntryLines",
    doc="Create a purchase invoice (purchase entry) with lines. Journal is asked for, never assumed.",
)  # fmt: skip
QUOTATIONS = Action(
    "quotations.create", Verb.CREATE, "crm/Quotations", "QuotationID",
    (p("OrderAccount", G, True, references="accounts"), p("QuotationDate", D), p("ClosingDate", D),
     p("YourRef", T), p("Description", T), p("Remarks", T), p("Currency", T, max_length=3)),
    lines=Lines("QuotationLines", (p("Item", G, True, references="items"), p("Quantity", N), p("NetPrice", N),
                                   p("Description", T), p("VATCode", T))),
    marker="Remarks", table="quotations", expand="QuotationLines", doc="Create a quotation with lines.",
)  # fmt: skip
PURCHASE_ORDERS = Action(
    "purchase_orders.create", Verb.CREATE, "purchaseorder/PurchaseOrders", "PurchaseOrderID",
    (p("Supplier", G, True, references="accounts"), p("OrderDate", D), p("ReceiptDate", D), p("YourRef", T),
     p("Description", T), p("Remarks", T), p("Currency", T, max_length=3)),
    lines=Lines("PurchaseOrderLines", (p("Item", G, True, references="items"),
                                       p("QuantityInPurchaseUnits", N, True), p("NetPrice", N), p("Description", T))),
    marker="Remarks", table="purchase_orders", expand="PurchaseOrderLines", doc="Create a purchase order with lines.",
)  # fmt: skip


def reference_list(name: str, resource: str, select: str, filter: str | None = None) -> Action:
    return Action(
        f"{name}.list", Verb.LIST, resource, "ID", select=select, filter=filter,
        doc=f"List {name.replace('_', ' ')} ({resource}), every page.",
    )  # fmt: skip


ALL: tuple[Action, ...] = (
    ACCOUNTS, update_of(ACCOUNTS), by_key(ACCOUNTS, Verb.DELETE), by_key(ACCOUNTS, Verb.GET),
    CONTACTS, update_of(CONTACTS), by_key(CONTACTS, Verb.DELETE), by_key(CONTACTS, Verb.GET),
    ITEMS, update_of(ITEMS), by_key(ITEMS, Verb.DELETE), by_key(ITEMS, Verb.GET),
    SALES_INVOICES, update_of(SALES_INVOICES, require_status=("Status", 20), expand="SalesInvoiceLines"),
    by_key(SALES_INVOICES, Verb.GET),
    SALES_ORDERS, by_key(SALES_ORDERS, Verb.GET), PURCHASE_ENTRIES, by_key(PURCHASE_ENTRIES, Verb.GET),
    QUOTATIONS, update_of(QUOTATIONS), PURCHASE_ORDERS, update_of(PURCHASE_ORDERS),
    reference_list("divisions", "system/Divisions", "Code,Description,Status,Current"),
    reference_list("journals", "financial/Journals", "ID,Code,Description,Type"),
    reference_list("vat_codes", "vat/VATCodes", "ID,Code,Description,Percentage"),
    reference_list("gl_accounts", "financial/GLAccounts", "ID,Code,Description,Type"),
    reference_list("item_groups", "logistics/ItemGroups", "ID,Code,Description"),
    reference_list("payment_conditions", "cashflow/PaymentConditions", "ID,Code,Description"),
)  # fmt: skip
ACTIONS: dict[str, Action] = {action.name: action for action in ALL}
