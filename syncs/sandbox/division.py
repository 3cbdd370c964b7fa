"""One division's records and its change logs. Not locked: SandboxState holds the lock around every call."""

from __future__ import annotations

import random
import uuid
from typing import Any

from syncs.sandbox.catalog import CatalogStore
from syncs.sandbox.dates import coerce_date, exact_datetime
from syncs.sandbox.documents import Documents
from syncs.sandbox.fields import (
    ACCOUNT_DEFAULTS,
    ENTITY_TYPE_ACCOUNTS,
    ENTITY_TYPE_SALES_INVOICES,
    HEADER_DEFAULTS,
    LINE_DEFAULTS,
    complete_line,
)
from syncs.sandbox.synclog import SyncLog

Record = dict[str, Any]
FIRST_TIMESTAMP = 3_000_000_000  # above Int32 on purpose: Exact's row versions are Int64
QUIRK_EVERY = 7  # every 7th record sends a number/boolean as a string, as real Exact sometimes does
_DATE_FIELDS = ("InvoiceDate", "DueDate", "OrderDate")
_AMOUNT_INPUTS = ("Quantity", "NetPrice", "VATPercentage")
_AMOUNT_OUTPUTS = ("AmountFC", "AmountDC", "VATAmountFC", "VATAmountDC")


def pad_code(code: object) -> str:
    return str(code).strip().rjust(18)


def _check_fields(fields: dict[str, Any], allowed: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    unknown = set(fields) - set(allowed) - set(extra)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")


class DivisionData:
    def __init__(self, code: int, description: str, user_id: str) -> None:
        self.code = code
        self.description = description
        self.user_id = user_id
        self.timestamp = FIRST_TIMESTAMP
        self.accounts: dict[str, Record] = {}
        self.invoices: dict[str, Record] = {}
        self.invoice_line_ids: dict[str, list[str]] = {}
        self.lines: dict[str, Record] = {}
        self.deletions: dict[str, Record] = {}
        self.quirky: set[str] = set()
        self.account_log = SyncLog()
        self.line_log = SyncLog()
        self.deleted_log = SyncLog()
        self._ordinal = 0
        self.next_account_code = 1
        self.next_invoice_number = 24_700_001
        # Keys come from a generator seeded by the division: the same on every start (stable invoice line IDs).
        self._ids = random.Random(f"ids:{code}")
        self.catalog = CatalogStore(code, self.bump, self._deleted)
        self.documents = Documents(self.catalog)
        self.move_date: str | None = None  # system/Divisions DivisionMoveDate (set: Exact moved the division)

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def bump(self) -> int:
        self.timestamp += 1
        return self.timestamp

    def mark(self, key: str) -> None:
        self._ordinal += 1
        if self._ordinal % QUIRK_EVERY == 0:
            self.quirky.add(key)

    # accounts ----------------------------------------------------------------------------------------------
    def create_account(self, fields: dict[str, Any], now: float) -> Record:
        _check_fields(fields, ACCOUNT_DEFAULTS, ("ID", "Created", "Modified"))
        ts = self.bump()
        stamp = exact_datetime(now)
        record: Record = {"ID": fields.get("ID") or self.new_id(), **ACCOUNT_DEFAULTS}
        record.update({k: v for k, v in fields.items() if k != "ID"})
        if record["Code"] is None:
            record["Code"] = str(self.next_account_code)
            self.next_account_code += 1
        record["Code"] = pad_code(record["Code"])
        record.setdefault("Created", stamp)
        record.setdefault("Modified", stamp)
        record["Division"] = self.code
        record["Timestamp"] = ts
        self.accounts[record["ID"]] = record
        self.mark(record["ID"])
        self.account_log.touch(record["ID"], ts)
        return dict(record)

    def update_account(self, account_id: str, fields: dict[str, Any], now: float) -> Record:
        _check_fields(fields, ACCOUNT_DEFAULTS)
        record = self.accounts[account_id]
        record.update(fields)
        if "Code" in fields:
            record["Code"] = pad_code(record["Code"])
        record["Modified"] = exact_datetime(now)
        record["Timestamp"] = ts = self.bump()
        self.account_log.touch(account_id, ts)
        return dict(record)

    def delete_account(self, account_id: str, now: float) -> Record:
        del self.accounts[account_id]
        self.account_log.remove(account_id)
        return self._deleted(account_id, ENTITY_TYPE_ACCOUNTS, now)

    # invoices ----------------------------------------------------------------------------------------------
    def create_invoice(self, header: dict[str, Any], lines: list[dict[str, Any]], now: float) -> Record:
        _check_fields(header, HEADER_DEFAULTS, ("InvoiceID", "Created", "Modified"))
        ts = self.bump()
        stamp = exact_datetime(now)
        record: Record = {"InvoiceID": header.get("InvoiceID") or self.new_id(), **HEADER_DEFAULTS}
        record.update({k: v for k, v in header.items() if k != "InvoiceID"})
        if "InvoiceNumber" not in header:
            record["InvoiceNumber"] = self.next_invoice_number
            self.next_invoice_number += 1
        for name in _DATE_FIELDS:
            record[name] = coerce_date(record[name])
        record.setdefault("Created", stamp)
        record.setdefault("Modified", stamp)
        record["Division"] = self.code
        record["Timestamp"] = ts
        invoice_id = record["InvoiceID"]
        self.invoices[invoice_id] = record
        self.invoice_line_ids[invoice_id] = []
        for number, fields in enumerate(lines, start=1):
            self._new_line(invoice_id, {"LineNumber": number, **fields}, ts, stamp)
        self._resum(record)
        return self.invoice_view(invoice_id)

    def _new_line(self, invoice_id: str, fields: dict[str, Any], ts: int, stamp: str) -> Record:
        _check_fields(fields, LINE_DEFAULTS, ("ID", "InvoiceID", "Modified"))
        line: Record = {"ID": fields.get("ID") or self.new_id(), "InvoiceID": invoice_id, **LINE_DEFAULTS}
        line.update({k: v for k, v in fields.items() if k not in ("ID", "InvoiceID")})
        complete_line(line)
        line.setdefault("Modified", stamp)
        line["Timestamp"] = ts
        self.lines[line["ID"]] = line
        self.invoice_line_ids[invoice_id].append(line["ID"])
        self.mark(line["ID"])
        self.line_log.touch(line["ID"], ts)
        return line

    def add_invoice_line(self, invoice_id: str, fields: dict[str, Any], now: float) -> Record:
        header = self.invoices[invoice_id]
        ts = self.bump()
        number = len(self.invoice_line_ids[invoice_id]) + 1
        line = self._new_line(invoice_id, {"LineNumber": number, **fields}, ts, exact_datetime(now))
        self._resum_and_bump(header, now)
        return dict(line)

    def update_invoice(self, invoice_id: str, fields: dict[str, Any], now: float) -> Record:
        _check_fields(fields, HEADER_DEFAULTS)
        header = self.invoices[invoice_id]
        header.update(fields)
        for name in _DATE_FIELDS:
            if name in fields:
                header[name] = coerce_date(fields[name])
        self._bump_header(header, now)
        return self.invoice_view(invoice_id)

    def update_invoice_line(self, line_id: str, fields: dict[str, Any], now: float) -> Record:
        _check_fields(fields, LINE_DEFAULTS)
        line = self.lines[line_id]
        line.update(fields)
        if any(k in fields for k in _AMOUNT_INPUTS):
            for name in _AMOUNT_OUTPUTS:
                if name not in fields:
                    line[name] = None
            complete_line(line)
        line["Modified"] = exact_datetime(now)
        line["Timestamp"] = ts = self.bump()
        self.line_log.touch(line_id, ts)
        self._resum_and_bump(self.invoices[line["InvoiceID"]], now)
        return dict(line)

    def delete_invoice_line(self, line_id: str, now: float) -> Record:
        line = self.lines.pop(line_id)
        self.line_log.remove(line_id)
        self.invoice_line_ids[line["InvoiceID"]].remove(line_id)
        deletion = self._deleted(line_id, ENTITY_TYPE_SALES_INVOICES, now)
        self._resum_and_bump(self.invoices[line["InvoiceID"]], now)
        return deletion

    def delete_invoice(self, invoice_id: str, now: float) -> Record:
        del self.invoices[invoice_id]
        for line_id in self.invoice_line_ids.pop(invoice_id):
            del self.lines[line_id]
            self.line_log.remove(line_id)
        return self._deleted(invoice_id, ENTITY_TYPE_SALES_INVOICES, now)

    def invoice_view(self, invoice_id: str) -> Record:
        """The header with its lines under "Lines" (the control API's shape)."""
        view = dict(self.invoices[invoice_id])
        view["Lines"] = [dict(self.lines[i]) for i in self.invoice_line_ids[invoice_id]]
        return view

    def invoice_rows(self, fields: list[str]) -> list[Record]:
        """A row per line, header fields repeated; Timestamp/Modified from whichever changed last."""
        rows = []
        for line in self.lines.values():
            header = self.invoices[line["InvoiceID"]]
            line_newer = line["Timestamp"] >= header["Timestamp"]
            row = {name: line[name] if name in line else header[name] for name in fields}
            row["Timestamp"] = max(line["Timestamp"], header["Timestamp"])
            row["Modified"] = line["Modified"] if line_newer else header["Modified"]
            rows.append(row)
        return rows

    def _resum(self, header: Record) -> bool:
        total = round(sum(float(self.lines[i]["AmountFC"]) for i in self.invoice_line_ids[header["InvoiceID"]]), 2)
        changed: bool = header.get("AmountFCExclVat") != total
        header["AmountFCExclVat"] = total
        return changed

    def _resum_and_bump(self, header: Record, now: float) -> None:
        """A header total that changes is a header change: every line row of the invoice is re-emitted."""
        if self._resum(header):
            self._bump_header(header, now)

    def _bump_header(self, header: Record, now: float) -> None:
        header["Modified"] = exact_datetime(now)
        header["Timestamp"] = ts = self.bump()
        for line_id in self.invoice_line_ids[header["InvoiceID"]]:
            self.line_log.touch(line_id, ts)

    # deletions ---------------------------------------------------------------------------------------------
    def _deleted(self, entity_key: str, entity_type: int, now: float) -> Record:
        ts = self.bump()
        record: Record = {
            "ID": self.new_id(),
            "Timestamp": ts,
            "DeletedBy": self.user_id,
            "DeletedDate": exact_datetime(now),
            "Division": self.code,
            "EntityKey": entity_key,
            "EntityType": entity_type,
        }
        self.deletions[record["ID"]] = record
        self.deleted_log.touch(record["ID"], ts)
        return dict(record)
