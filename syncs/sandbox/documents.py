"""Documents with lines that actions write through Exact's standard endpoints, stored in the generated entities'
stores so that the writes show up in their sync feeds (and webhooks), as Exact's would:

- sales orders and quotations: the header in its header feed (sync `ID` = the document's key, as far as known),
  each line in its lines feed; a header change re-stamps the header only (catalog #15-#18).
- purchase orders: one mixed feed, a LineNumber 0 header row and a row per line with the header's fields
  repeated; any change re-stamps every row of the order (catalog #19).
- purchase entries: no sync feed (read by `Modified`); the lines live inside the record and are not synced.

Not locked: SandboxState holds the lock around every call. A refused write raises ValueError (Exact's 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncs.sandbox.catalog import CatalogStore, EntityStore
from syncs.sandbox.dates import coerce_date, exact_datetime

Record = dict[str, Any]
VAT_RATE = 0.21  # the sandbox's one VAT rate (its generated VAT code "2")


@dataclass(frozen=True)
class Shape:
    """How one document type is stored and served."""

    header: str  # the store (entity) holding the header
    key: str  # the document's key on the standard endpoint (OrderID, ...)
    lines_name: str  # the collection on the standard endpoint (SalesOrderLines, ...)
    line_required: tuple[str, ...]  # Exact's required line fields (catalog W5)
    number: str  # the document number Exact assigns (OrderNumber, ...)
    status: tuple[str, int]  # the status a new document gets
    topic: str  # the webhook topic of its changes
    line_store: str | None = None  # the lines' own store (sales_order_lines); None: mixed feed or embedded
    embedded: bool = False  # lines kept inside the record (purchase entries)
    quantity: str = "Quantity"

    @property
    def mixed(self) -> bool:
        return self.line_store is None and not self.embedded


SHAPES: dict[str, Shape] = {
    "salesorder/salesorders": Shape(
        "sales_orders", "OrderID", "SalesOrderLines", ("Item",), "OrderNumber", ("Status", 12), "SalesOrders",
        line_store="sales_order_lines",
    ),
    "crm/quotations": Shape(
        "quotations", "QuotationID", "QuotationLines", ("Item",), "QuotationNumber", ("Status", 20), "Quotations",
        line_store="quotation_lines",
    ),
    "purchaseorder/purchaseorders": Shape(
        "purchase_orders", "PurchaseOrderID", "PurchaseOrderLines", ("Item", "QuantityInPurchaseUnits"),
        "OrderNumber", ("OrderStatus", 10), "PurchaseOrders", quantity="QuantityInPurchaseUnits",
    ),
    "purchaseentry/purchaseentries": Shape(
        "purchase_entries", "EntryID", "PurchaseEntryLines", ("GLAccount", "AmountFC"), "EntryNumber",
        ("Status", 20), "PurchaseEntries", embedded=True,
    ),
}  # fmt: skip
# Fields Exact takes on these documents that the sync feeds do not declare (the actions' write-only fields).
WRITE_ONLY = ("YourRef", "Description", "Remarks", "Currency", "DeliveryDate", "ClosingDate", "ReceiptDate", "Journal",
              "PaymentCondition", "EntryDate", "DueDate")  # fmt: skip


def _dated(fields: Record) -> Record:
    """ISO dates from callers stored in Exact's `/Date(ms)/` encoding."""
    return {k: coerce_date(v) if k.endswith("Date") and v is not None else v for k, v in fields.items()}


def _amount(shape: Shape, line: Record) -> float:
    if shape.embedded:
        return float(line["AmountFC"])
    return round(float(line.get(shape.quantity) or 0) * float(line.get("NetPrice") or 0), 2)


def _lines(body: Record, shape: Shape) -> list[Record]:
    lines = body.pop(shape.lines_name, None) or []
    if isinstance(lines, dict):  # Exact also takes {"results": [...]}
        lines = lines.get("results") or []
    if not isinstance(lines, list) or not lines:
        raise ValueError(f"{shape.lines_name}: at least one line is required")
    for index, line in enumerate(lines):
        missing = [name for name in shape.line_required if not isinstance(line, dict) or line.get(name) in (None, "")]
        if missing:
            raise ValueError(f"Mandatory: {', '.join(f'{shape.lines_name}[{index}].{m}' for m in missing)}")
    return [dict(line) for line in lines]


class Documents:
    """One division's written documents, over its catalog stores."""

    def __init__(self, catalog: CatalogStore) -> None:
        self.catalog = catalog

    def _store(self, name: str) -> EntityStore:
        return self.catalog.store(name)

    def create(self, shape: Shape, body: Record, now: float) -> Record:
        lines = _lines(body, shape)
        key = self.catalog.new_key(shape.header, shape.key)
        header_store = self._store(shape.header)
        stamp = exact_datetime(now)
        header: Record = {
            **dict.fromkeys(name for name in header_store.entity.select_fields if name != "Timestamp"),
            **dict.fromkeys(WRITE_ONLY), **_dated(body), shape.key: key, shape.number: len(self.keys(shape)) + 1,
            shape.status[0]: shape.status[1], "AmountDC": round(sum(_amount(shape, line) for line in lines), 2),
            "Modified": stamp,
        }  # fmt: skip
        if shape.embedded:
            header["VATAmountDC"] = round(header["AmountDC"] * VAT_RATE, 2)
            header[shape.lines_name] = [{"ID": self.catalog.new_key(shape.header, "line"), shape.key: key, **line}
                                        for line in lines]  # fmt: skip
            self.catalog.create(shape.header, header, now)
            return self.view(shape, key)
        if shape.mixed:
            header.update(ID=self.catalog.new_key(shape.header, "ID"), LineNumber=0)
        else:
            header["ID"] = key
        self.catalog.create(shape.header, header, now)
        store = shape.line_store or shape.header
        line_fields = [name for name in self._store(store).entity.select_fields if name != "Timestamp"]
        for number, line in enumerate(lines, start=1):
            base = {**dict.fromkeys(line_fields), **({k: v for k, v in header.items()} if shape.mixed else {})}
            row = {**base, **line, "ID": self.catalog.new_key(store, "ID"), shape.key: key, "LineNumber": number,
                   shape.number: header[shape.number], "Modified": stamp}  # fmt: skip
            if not shape.mixed:
                row["AmountDC"] = _amount(shape, line)
            self.catalog.create(store, row, now)
        return self.view(shape, key)

    def _rows(self, shape: Shape, key: str) -> tuple[Record, list[Record]]:
        """The stored header and line rows of one document; KeyError when there is none."""
        header_rows = [r for r in self._store(shape.header).records.values() if str(r.get(shape.key)) == key]
        if shape.mixed:
            head = [r for r in header_rows if r.get("LineNumber") == 0]
            lines = [r for r in header_rows if r.get("LineNumber") != 0]
        else:
            head = header_rows
            source = self._store(shape.line_store).records.values() if shape.line_store else []
            lines = [r for r in source if str(r.get(shape.key)) == key]
        if not head:
            raise KeyError(key)
        return head[0], sorted(lines, key=lambda line: int(line.get("LineNumber") or 0))

    def view(self, shape: Shape, key: str) -> Record:
        """The document as the standard endpoint answers it: the header with its lines under `lines_name`."""
        header, lines = self._rows(shape, key)
        view = {k: v for k, v in header.items() if k not in ("Timestamp", shape.lines_name)}
        stored = header.get(shape.lines_name) if shape.embedded else lines
        view[shape.lines_name] = {"results": [{k: v for k, v in line.items() if k != "Timestamp"}
                                              for line in stored or []]}  # fmt: skip
        return view

    def keys(self, shape: Shape) -> list[str]:
        rows = self._store(shape.header).records.values()
        return sorted(
            {str(r[shape.key]) for r in rows if r.get(shape.key) and (not shape.mixed or r["LineNumber"] == 0)}
        )

    def update(self, shape: Shape, key: str, fields: Record, now: float) -> Record:
        """A PUT of header fields: the header changes (and, in a mixed feed, every row repeating it)."""
        if shape.lines_name in fields:
            raise ValueError(f"{shape.lines_name}: lines are changed through their own endpoint")
        header, lines = self._rows(shape, key)
        changed = {**_dated(fields), "Modified": exact_datetime(now)}
        store_key = self._store(shape.header).entity.row_key
        self.catalog.update(shape.header, str(header[store_key]), changed, now, WRITE_ONLY)
        if shape.mixed:
            for line in lines:
                self.catalog.update(shape.header, str(line["ID"]), changed, now, WRITE_ONLY)
        return self.view(shape, key)
