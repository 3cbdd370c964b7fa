"""Every action, declared on its entity (syncs/entities/catalog): which fields are writable, which Exact requires
(shared/exact-entities.md W5, from PIS `#[Exact\\Required]`), and rules beyond a field's kind.

Tenant data is never assumed: a journal left empty is looked up (the division's one sales or purchase journal,
PIS Financial/Journals `Type` 20 Sales, 22 Purchase) and the answer says which was chosen; nothing here names a
code of one tenant.
"""

from __future__ import annotations

from syncs.actions.build import Rule, create, crud, header_table, lines, params, reference_list
from syncs.actions.declaration import Action, Kind, Lookup, Param, Verb
from syncs.entities.declaration import fields

C, U, D, G = Verb.CREATE, Verb.UPDATE, Verb.DELETE, Verb.GET
CURRENCY = Rule(max_length=3)


def journal(what: str, type_: int) -> Rule:
    return Rule(
        doc=f"a {what} code of this division; left empty: the division's only {what} (see journals.list)",
        lookup=Lookup("journals", "code", ("type", type_), what),
    )


def customer_document(
    entity: str,
    resource: str,
    key: str,
    party: str,
    day: str,
    until: str,
    lines_name: str,
    lines_entity: str,
    doc: str,
) -> Action:
    """A sales order or a quotation: a customer, a date, lines of items kept in their own sync stream."""
    return create(
        entity,
        resource,
        key=key,
        required=party,
        optional=f"{day} Currency",
        write_only=fields(date=until, text="YourRef Description Remarks"),
        rules={"Currency": CURRENCY},
        document_lines=lines(
            lines_name, lines_entity, "Item", "Quantity NetPrice VATCode", fields(text="Description"), separate=True
        ),
        marker="Remarks",
        doc=doc,
    )


ACCOUNTS = create(
    "accounts", "crm/Accounts", required="Name",
    optional="Code Status Email Phone Website AddressLine1 Postcode City Country VATNumber ChamberOfCommerce "
    "IsSales IsSupplier Blocked", write_only=fields(text="Remarks"),
    rules={"Name": Rule(max_length=50), "Code": Rule(max_length=18), "Status": Rule(choices=("A", "S", "P", "C")),
           "Country": Rule(max_length=3)},
    marker="Remarks", doc="Create a customer/supplier account (POST crm/Accounts; the echo is mostly null, so it is "
    "read back).",
)  # fmt: skip
CONTACTS = create(
    "contacts", "crm/Contacts", required="Account FirstName LastName", optional="Email BusinessPhone",
    write_only=fields(text="BusinessMobile Title Notes"), marker="Notes",
    doc="Create a contact person of an account.",
)  # fmt: skip
ITEMS = create(
    "items", "logistics/Items", required="Code Description",
    optional="ItemGroup IsSalesItem IsPurchaseItem IsStockItem CostPriceStandard SalesVatCode Unit",
    write_only=fields(text="ExtraDescription"), rules={"Code": Rule(max_length=30), "Description": Rule(max_length=60)},
    marker="Code", doc="Create an item; its Code (required, unique in Exact) is the marker.",
)  # fmt: skip
SALES_INVOICES = create(
    "sales_invoices", "salesinvoice/SalesInvoices", required="Journal OrderedBy",
    optional="InvoiceTo DeliverTo InvoiceDate OrderDate DueDate Currency YourRef PaymentCondition Type",
    write_only=fields(text="Description Remarks"),
    rules={"Journal": journal("sales journal", 20), "Currency": CURRENCY,
           "Type": Rule(choices=(8020, 8021, 8023, 8024), doc="8020 sales invoice (Exact's default), 8021 credit "
                        "note; 8023/8024 direct ones need a Wholesale/Manufacturing edition")},
    document_lines=lines("SalesInvoiceLines", "sales_invoices", "", "Item GLAccount Quantity NetPrice UnitPrice "
                         "Description VATCode", one_of=("Item", "GLAccount")),
    marker="Remarks", doc="Create a sales invoice with its lines (Status 20 Open).",
)  # fmt: skip
SALES_ORDERS = customer_document(
    "sales_orders", "salesorder/SalesOrders", "OrderID", "OrderedBy", "OrderDate", "DeliveryDate", "SalesOrderLines",
    "sales_order_lines", "Create a sales order with its lines (Status 12 Open).",
)  # fmt: skip
PURCHASE_ENTRIES = create(
    "purchase_entries", "purchaseentry/PurchaseEntries", required="Journal Supplier",
    optional="EntryDate DueDate YourRef Currency", write_only=fields(text="Description PaymentCondition"),
    rules={"Journal": journal("purchase journal", 22), "Currency": CURRENCY},
    document_lines=lines("PurchaseEntryLines", None, "GLAccount AmountFC", "",
                         fields(guid="GLAccount", number="AmountFC", text="VATCode Description")),
    marker="Description", doc="Create a purchase invoice (purchase entry) with its lines.",
)  # fmt: skip
QUOTATIONS = customer_document(
    "quotations", "crm/Quotations", "QuotationID", "OrderAccount", "QuotationDate", "ClosingDate", "QuotationLines",
    "quotation_lines", "Create a quotation with its lines.",
)  # fmt: skip
PURCHASE_ORDERS = create(
    "purchase_orders", "purchaseorder/PurchaseOrders", required="Supplier", optional="OrderDate",
    write_only=fields(date="ReceiptDate", text="YourRef Description Remarks Currency"), rules={"Currency": CURRENCY},
    document_lines=lines("PurchaseOrderLines", "purchase_orders", "Item QuantityInPurchaseUnits", "NetPrice",
                         fields(text="Description"), header_row=True),
    marker="Remarks", doc="Create a purchase order with its lines.",
)  # fmt: skip

# Written by sales_invoices.attach_file only (not actions of their own): the document and its attachment.
DOCUMENTS = create(
    "documents", "documents/Documents", required="Subject Type", optional="DocumentDate Account "
    "FinancialTransactionEntryID", write_only=fields(text="Body"), marker="Body", doc="A document.",
)  # fmt: skip
DOCUMENT_ATTACHMENTS = create(
    "document_attachments", "documents/DocumentAttachments", required="Document FileName", marker="FileName",
    doc="A file on a document.",
)  # fmt: skip
# A decision where Exact's documentation is silent: files up to 10 MiB (base64 in a JSON body, kept in the ledger).
ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
ATTACH_FILE = Action(
    "sales_invoices.attach_file", Verb.ATTACH, SALES_INVOICES.resource, SALES_INVOICES.key,
    (Param(SALES_INVOICES.key, Kind.GUID, True, references="sales_invoices", doc="the invoice"),
     *params("document_attachments", header_table("document_attachments"), "FileName"),
     Param("Attachment", Kind.BASE64, True, doc="the file's bytes, base64", max_bytes=ATTACHMENT_MAX_BYTES),
     *params("documents", header_table("documents"), "Type Subject", "DocumentDate", fields(text="Body"),
             {"Type": Rule(doc="Exact's document type (asked for, never assumed)")})),
    marker="Body", entity="sales_invoices", record_lines=SALES_INVOICES.record_lines,
    doc="Attach a file to a sales invoice: POST documents/Documents, POST documents/DocumentAttachments (the bytes, "
    "base64), PUT the invoice's Document; each step looked up before it is sent again.",
)  # fmt: skip

ALL: tuple[Action, ...] = (
    *crud(ACCOUNTS, U, D, G), *crud(CONTACTS, U, D, G), *crud(ITEMS, U, D, G),
    *crud(SALES_INVOICES, U, G, require_status=("Status", 20)), ATTACH_FILE,
    *crud(SALES_ORDERS, G), *crud(PURCHASE_ENTRIES, G), *crud(QUOTATIONS, U, G), *crud(PURCHASE_ORDERS, U, G),
    reference_list("divisions", "system/Divisions", "Code,Description,Status,Current"),
    reference_list("journals", "financial/Journals", "ID,Code,Description,Type"),
    reference_list("vat_codes", "vat/VATCodes", "ID,Code,Description,Percentage"),
    reference_list("gl_accounts", "financial/GLAccounts", "ID,Code,Description,Type"),
    reference_list("item_groups", "logistics/ItemGroups", "ID,Code,Description"),
    reference_list("payment_conditions", "cashflow/PaymentConditions", "ID,Code,Description"),
    reference_list("cost_centers", "hrm/Costcenters", "ID,Code,Description"),
)  # fmt: skip
ACTIONS: dict[str, Action] = {action.name: action for action in ALL}
