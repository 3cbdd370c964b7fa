"""The README's SQL questions, run as written against tables synced from the sandbox, answer what the sandbox
holds (computed here from its records)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from syncs.engine.streams import sync_division
from syncs.entities.catalog import CATALOG
from syncs.exact.client import ExactClient
from syncs.sandbox import SandboxServer
from syncs.sandbox.dates import parse_exact

README = Path(__file__).resolve().parents[2] / "README.md"
DIV = 124132


def readme_query(name: str) -> str:
    match = re.search(rf"-- {name}\n(.*?);", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, f"README has no query '-- {name}'"
    return match.group(1)


def run(db: sessionmaker[Session], name: str) -> list[tuple[Any, ...]]:
    with db() as session:
        return [tuple(row) for row in session.execute(text(readme_query(name)))]


def day(value: str) -> date:
    return parse_exact(value).date()


def test_readme_questions_answer_from_synced_tables(
    sandbox: SandboxServer, exact: ExactClient, db: sessionmaker[Session], connection_id: int
) -> None:
    state = sandbox.state
    sync_division(db, exact, connection_id, DIV, list(CATALOG))

    revenue: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    names = {a["ID"]: a["Name"] for a in state.accounts(DIV)}
    for invoice in state.invoices(DIV):
        if invoice["InvoiceTo"] in names:  # the join keeps invoices of known customers
            month = day(invoice["InvoiceDate"]).replace(day=1)
            for line in invoice["Lines"]:
                revenue[(names[invoice["InvoiceTo"]], month)] += Decimal(str(line["AmountDC"]))
    found = {(name, month): amount for name, month, amount in run(db, "revenue per customer per month")}
    assert found == dict(revenue) and found

    open_by_due: dict[date, Decimal] = defaultdict(Decimal)
    for term in state.records(DIV, "payment_terms"):
        if term["LineType"] == 20 and term["Status"] == 20 and not term["IsFullyPaid"]:
            open_by_due[day(term["DueDate"])] += Decimal(str(term["AmountDC"]))
    assert dict(run(db, "open receivables by due date")) == dict(open_by_due) and open_by_due

    undelivered = {
        line["ID"]: Decimal(str(line["Quantity"])) - Decimal(str(line["QuantityDelivered"]))
        for line in state.records(DIV, "sales_order_lines")
        if line["Quantity"] > line["QuantityDelivered"]
    }
    rows = run(db, "sales order lines not yet delivered")
    assert {str(row[0]): row[-1] for row in rows} == undelivered and undelivered

    stock: dict[str, Decimal] = defaultdict(Decimal)
    codes = {item["ID"]: item["Code"] for item in state.records(DIV, "items")}
    for position in state.records(DIV, "stock_positions"):
        stock[codes[position["ItemId"]]] += Decimal(str(position["CurrentStock"]))
    assert {code: amount for code, _description, amount in run(db, "stock per item")} == dict(stock) and stock
