"""Purchase: purchase orders with their lines, purchase entries (invoices)."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Output, Split, Strategy, TableDecl, fields

PURCHASE_ORDERS = TableDecl(
    "purchase_orders",
    ("PurchaseOrderID",),
    fields(
        int="OrderNumber OrderStatus ReceiptStatus",
        date="OrderDate",
        guid="Supplier",
        number="AmountDC",
        datetime="Modified",
        index="Supplier",
    ),
    "Purchase order headers (one per PurchaseOrderID), from the header rows of the purchase orders feed, else "
    "from the order's newest line row.",
)
PURCHASE_ORDER_LINES = TableDecl(
    "purchase_order_lines",
    ("ID",),
    fields(
        guid="PurchaseOrderID Item",
        int="LineNumber",
        number="QuantityInPurchaseUnits NetPrice",
        datetime="Modified",
        index="PurchaseOrderID Item",
    ),
    "Purchase order lines; `purchase_order_id` joins `purchase_orders.id`.",
)
PURCHASE_ENTRIES = TableDecl(
    "purchase_entries",
    ("EntryID",),
    fields(
        int="EntryNumber InvoiceNumber Status",
        date="EntryDate DueDate",
        text="Journal YourRef Currency",
        guid="Supplier",
        number="AmountDC VATAmountDC",
        datetime="Modified",
        index="Supplier",
    ),
    "Purchase invoices (purchaseentry/PurchaseEntries). No sync endpoint and no deletion EntityType: read by "
    "`Modified` with an overlap; deletions are found by the key reconciliation.",
)

ENTITIES = (
    Entity(
        "purchase_orders", "sync/PurchaseOrder/PurchaseOrders", Strategy.SYNC,
        (
            Output(PURCHASE_ORDERS, Split(header_of="PurchaseOrderID")),
            Output(PURCHASE_ORDER_LINES, Split(lines_only=True)),
        ),
        Cadence.MASTER, frozenset({22}), "PurchaseOrders", "PIS Sync/PurchaseOrder/PurchaseOrders.php",
    ),
    Entity(
        "purchase_entries", "purchaseentry/PurchaseEntries", Strategy.MODIFIED, (Output(PURCHASE_ENTRIES),),
        Cadence.TRANSACTIONAL, frozenset(), "PurchaseEntries", "PIS PurchaseEntry/PurchaseEntries.php; WJK",
    ),
)  # fmt: skip
