"""GUID fields that name another entity's record, by field name: what the sandbox's generated rows point at and
which synced table an action checks a referenced record in."""

from __future__ import annotations

# (entity or "" for any, field) -> (entity, its key field).
REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("", "Account"): ("accounts", "ID"),
    ("", "OrderedBy"): ("accounts", "ID"),
    ("", "InvoiceTo"): ("accounts", "ID"),
    ("", "DeliverTo"): ("accounts", "ID"),
    ("", "OrderAccount"): ("accounts", "ID"),
    ("", "DeliveryAccount"): ("accounts", "ID"),
    ("", "Supplier"): ("accounts", "ID"),
    ("", "Item"): ("items", "ID"),
    ("", "ItemId"): ("items", "ID"),
    ("", "ItemGroup"): ("item_groups", "ID"),
    ("", "GLAccount"): ("gl_accounts", "ID"),
    ("", "Employee"): ("employees", "ID"),
    ("", "Project"): ("projects", "ID"),
    ("", "Document"): ("documents", "ID"),
    ("", "Contact"): ("contacts", "ID"),
    ("", "OrderID"): ("sales_orders", "OrderID"),
    ("", "QuotationID"): ("quotations", "QuotationID"),
    ("", "SalesOrderLineID"): ("sales_order_lines", "ID"),
    ("goods_delivery_lines", "EntryID"): ("goods_deliveries", "EntryID"),
}


def referenced(entity: str, field: str) -> tuple[str, str] | None:
    """(entity, key field) a GUID field of `entity` points at, or None."""
    return REFERENCES.get((entity, field)) or REFERENCES.get(("", field))
