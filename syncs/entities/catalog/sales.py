"""Sales: invoices with their lines, orders with their lines, goods deliveries with their lines."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Kind, Output, Split, Strategy, TableDecl, fields, snake
from syncs.entities.declaration import Field as F

SALES_INVOICES = TableDecl(
    "sales_invoices",
    ("InvoiceID",),
    fields(
        bigint="InvoiceNumber",
        date="InvoiceDate DueDate OrderDate",
        guid="InvoiceTo OrderedBy DeliverTo",
        text="Journal Currency YourRef PaymentCondition",
        number="AmountFCExclVat",
        int="Status Type",
        datetime="Modified",
        index="InvoiceTo OrderedBy",
    ),
    "One row per invoice (InvoiceID). `amount_dc`, `amount_fc`, `vat_amount_dc`, `vat_amount_fc` are the sums "
    "over the invoice's live lines, recomputed whenever a page or a deletion touches the invoice.",
    derived=tuple(F(name, Kind.NUMBER, snake(name)) for name in ("AmountDC", "AmountFC", "VATAmountDC", "VATAmountFC")),
)
SALES_INVOICE_LINES = TableDecl(
    "sales_invoice_lines",
    ("ID",),
    fields(
        guid="InvoiceID Item GLAccount",
        int="LineNumber",
        text="ItemCode Description VATCode",
        number="Quantity UnitPrice NetPrice AmountDC AmountFC VATAmountDC VATAmountFC VATPercentage",
        index="InvoiceID Item GLAccount",
    ),
    "Invoice lines; `invoice_id` joins `sales_invoices.id`.",
)
SALES_ORDERS = TableDecl(
    "sales_orders",
    ("ID",),
    fields(
        guid="OrderID OrderedBy",
        int="OrderNumber Status DeliveryStatus InvoiceStatus",
        date="OrderDate",
        number="AmountDC",
        text="Currency",
        datetime="Modified",
        index="OrderID OrderedBy",
    ),
    "Sales order headers; `status` 12 open, 20 partial, 21 complete, 45 cancelled. Keyed by the sync row's ID "
    "(sync/Deleted names it); `order_id` is the order's key that lines refer to (the two are equal as far as "
    "known, unverified).",
)
SALES_ORDER_LINES = TableDecl(
    "sales_order_lines",
    ("ID",),
    fields(
        guid="OrderID Item",
        int="OrderNumber LineNumber",
        number="Quantity QuantityDelivered QuantityInvoiced NetPrice AmountDC",
        text="VATCode",
        datetime="Modified",
        index="OrderID Item",
    ),
    "Sales order lines; `order_id` joins `sales_orders.order_id`.",
)
GOODS_DELIVERIES = TableDecl(
    "goods_deliveries",
    ("EntryID",),
    fields(
        int="EntryNumber DeliveryNumber",
        date="DeliveryDate",
        guid="DeliveryAccount Warehouse",
        text="TrackingNumber",
        datetime="Modified",
        index="DeliveryAccount",
    ),
    "Goods deliveries (keyed by EntryID: the sync entity has no ID).",
)
GOODS_DELIVERY_LINES = TableDecl(
    "goods_delivery_lines",
    ("ID", "StorageLocation"),
    fields(
        guid="EntryID Item SalesOrderLineID StorageLocation",
        int="LineNumber SalesOrderNumber",
        number="QuantityDelivered",
        datetime="Modified",
        index="EntryID Item SalesOrderLineID",
    ),
    "Delivered lines. Exact repeats a line's ID for each storage location it was split over, so `id` is a "
    "name-based UUID of (ID, StorageLocation) and Exact's ID is in `exact_id`.",
)

ENTITIES = (
    # One row per invoice line, header fields repeated (PIS Sync/SalesInvoice/SalesInvoices.php; PQ
    # SyncSalesInvoice.php); a LineNumber 0 row, when Exact sends one, is the header only.
    Entity(
        "sales_invoices", "sync/SalesInvoice/SalesInvoices", Strategy.SYNC,
        (
            Output(SALES_INVOICES, Split(header_of="InvoiceID")),
            Output(SALES_INVOICE_LINES, Split(lines_only=True)),
        ),
        Cadence.TRANSACTIONAL, frozenset({13}), "SalesInvoices", "PIS Sync/SalesInvoice/SalesInvoices.php",
        division_field="Division", hook="invoice_totals",
    ),
    Entity(
        "sales_orders", "sync/SalesOrder/SalesOrderHeaders", Strategy.SYNC, (Output(SALES_ORDERS),),
        Cadence.TRANSACTIONAL, frozenset({32}), "SalesOrders", "PIS Sync/SalesOrder/SalesOrderHeaders.php",
    ),
    Entity(
        "sales_order_lines", "sync/SalesOrder/SalesOrderLines", Strategy.SYNC, (Output(SALES_ORDER_LINES),),
        Cadence.TRANSACTIONAL, frozenset({33}), "SalesOrders", "PIS Sync/SalesOrder/SalesOrderLines.php",
    ),
    Entity(
        "goods_deliveries", "sync/SalesOrder/GoodsDeliveries", Strategy.SYNC, (Output(GOODS_DELIVERIES),),
        Cadence.MASTER, frozenset({16}), "GoodsDeliveries", "PIS Sync/SalesOrder/GoodsDeliveries.php",
    ),
    Entity(
        "goods_delivery_lines", "sync/SalesOrder/GoodsDeliveryLines", Strategy.SYNC,
        (Output(GOODS_DELIVERY_LINES),), Cadence.MASTER, frozenset({17}), "GoodsDeliveries",
        "PIS Sync/SalesOrder/GoodsDeliveryLines.php",
    ),
)  # fmt: skip
