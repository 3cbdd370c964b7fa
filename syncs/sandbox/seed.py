"""Seed data: the recorded division 124132 (real Exact records, copied into seed/*.json) plus a second one."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from syncs.sandbox.division import DivisionData
from syncs.sandbox.generate import generate

FIRST_DIVISION = 124132
SECOND_DIVISION = 124133
SECOND_DESCRIPTION = "Sandbox Second BV"


def load_json(name: str) -> Any:
    return json.loads(resources.files("syncs.sandbox").joinpath("seed", name).read_text(encoding="utf-8"))


def me_template() -> dict[str, Any]:
    me: dict[str, Any] = load_json("me.json")
    return me


def division_record(code: int, description: str) -> dict[str, Any]:
    """A system/Divisions record: the recorded one for 124132, a look-alike for the others."""
    record: dict[str, Any] = load_json("division-124132.json")
    if code != FIRST_DIVISION:
        record.update(
            Code=code,
            Description=description,
            Hid=str(code - FIRST_DIVISION + 1),
            Country="NL ",
            Legislation="NL ",
            TemplateCode="NL_Base",
            Email=None,
            Phone=None,
        )
    return record


def seed_first(div: DivisionData, now: float) -> None:
    for account in load_json("accounts-124132.json"):
        div.create_account(account, now)
    numbers = [0]
    for invoice in load_json("invoices-124132.json"):
        lines = invoice.pop("Lines")
        div.create_invoice(invoice, lines, now)
        numbers.append(invoice.get("InvoiceNumber") or 0)
    div.next_invoice_number = max(max(numbers) + 1, div.next_invoice_number)
    div.next_account_code = len(div.accounts) + 1
    div.catalog.seed(list(div.accounts), now)


def seed_second(div: DivisionData, now: float) -> None:
    generate(div, now, accounts=8, invoices=5, lines_per_invoice=3)
    first = next(iter(div.invoices))
    # Give the seeded invoices 1-4 lines, as real ones vary.
    div.add_invoice_line(first, {"Description": "Extra line", "Quantity": 2, "NetPrice": 19.95}, now)
    last = list(div.invoices)[-1]
    for line_id in div.invoice_line_ids[last][1:]:
        div.delete_invoice_line(line_id, now)
    div.catalog.seed(list(div.accounts), now)
