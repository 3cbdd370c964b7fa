"""Bulk data for benchmarks and the demo: builds records directly, skipping per-call validation."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

from syncs.sandbox.dates import exact_date, exact_datetime
from syncs.sandbox.division import DivisionData, Record, pad_code
from syncs.sandbox.fields import ACCOUNT_DEFAULTS, HEADER_DEFAULTS, LINE_DEFAULTS

_CITIES = (("Amsterdam", "1011 AB"), ("Rotterdam", "3011 AA"), ("Utrecht", "3511 AA"), ("Delft", "2611 AA"))
_ITEMS = (
    ("918004e1-ab42-4b76-a196-fd57b44a3d4c", "M", "Marchandises", 12.5),
    ("61facaed-0389-4183-bf67-ac1c179e1050", "S", "Services", 85.0),
)
_GL_ACCOUNT = "93182378-d983-4d91-88ea-a5004ebdb4cc"


def _ids(rng: random.Random, count: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def generate(
    div: DivisionData, now: float, accounts: int, invoices: int, lines_per_invoice: int, seed: int = 0
) -> dict[str, int]:
    rng = random.Random(f"{div.code}:{seed}:{len(div.accounts)}:{len(div.invoices)}")
    stamp = exact_datetime(now)
    start = len(div.accounts)
    for n, account_id in enumerate(_ids(rng, accounts), start=start + 1):
        city, postcode = _CITIES[n % len(_CITIES)]
        ts = div.bump()
        record: Record = {"ID": account_id, **ACCOUNT_DEFAULTS}
        record.update(
            Code=pad_code(n),
            Name=f"Generated Customer {n}",
            Email=f"customer{n}@example.nl",
            City=city,
            Postcode=postcode,
            Country="NL",
            IsSales=True,
            Created=stamp,
            Modified=stamp,
            Division=div.code,
            Timestamp=ts,
        )
        div.accounts[account_id] = record
        div.account_log.touch(account_id, ts)
        div.mark(account_id)
    customers: list[str | None] = [*div.accounts] or [None]
    first_day = date(2024, 1, 1)
    for n, invoice_id in enumerate(_ids(rng, invoices)):
        ts = div.bump()
        customer = customers[n % len(customers)]
        day = first_day + timedelta(days=n % 700)
        header: Record = {"InvoiceID": invoice_id, **HEADER_DEFAULTS}
        header.update(
            InvoiceNumber=div.next_invoice_number,
            InvoiceDate=exact_date(day),
            DueDate=exact_date(day + timedelta(days=30)),
            OrderDate=exact_date(day),
            InvoiceTo=customer,
            OrderedBy=customer,
            DeliverTo=customer,
            Status=50 if n % 3 else 20,
            Created=stamp,
            Modified=stamp,
            Division=div.code,
            Timestamp=ts,
        )
        div.next_invoice_number += 1
        line_ids = _ids(rng, lines_per_invoice)
        total = 0.0
        for number, line_id in enumerate(line_ids, start=1):
            item, code, description, price = _ITEMS[(n + number) % len(_ITEMS)]
            quantity = float(1 + (n + number) % 5)
            amount = round(quantity * price, 2)
            vat = round(amount * 0.21, 2)
            total += amount
            line: Record = {"ID": line_id, "InvoiceID": invoice_id, **LINE_DEFAULTS}
            line.update(
                LineNumber=number,
                Item=item,
                ItemCode=code,
                Description=description,
                Quantity=quantity,
                UnitPrice=price,
                NetPrice=price,
                AmountDC=amount,
                AmountFC=amount,
                VATAmountDC=vat,
                VATAmountFC=vat,
                GLAccount=_GL_ACCOUNT,
                Modified=stamp,
                Timestamp=ts,
            )
            div.lines[line_id] = line
            div.line_log.touch(line_id, ts)
            div.mark(line_id)
        header["AmountFCExclVat"] = round(total, 2)
        div.invoices[invoice_id] = header
        div.invoice_line_ids[invoice_id] = line_ids
    return {"accounts": accounts, "invoices": invoices, "lines": invoices * lines_per_invoice}
