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
DIVISIONS = (124132, 124133)


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
    """Both sandbox divisions are synced: they share customer names and item codes, so an answer that mixed two
    companies' numbers would differ from the one computed per division."""
    state = sandbox.state
    for division in DIVISIONS:
        sync_division(db, exact, connection_id, division, list(CATALOG))

    revenue: dict[tuple[int, str, date], Decimal] = defaultdict(Decimal)
    open_by_due: dict[tuple[int, date], Decimal] = defaultdict(Decimal)
    undelivered: dict[str, Decimal] = {}
    stock: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for div in DIVISIONS:
        names = {a["ID"]: a["Name"] for a in state.accounts(div)}
        for invoice in state.invoices(div):
            if invoice["InvoiceTo"] in names:  # the join keeps invoices of known customers
                month = day(invoice["InvoiceDate"]).replace(day=1)
                for line in invoice["Lines"]:
                    revenue[(div, names[invoice["InvoiceTo"]], month)] += Decimal(str(line["AmountDC"]))
        for term in state.records(div, "payment_terms"):
            if term["LineType"] == 20 and term["Status"] == 20 and not term["IsFullyPaid"]:
                open_by_due[(div, day(term["DueDate"]))] += Decimal(str(term["AmountDC"]))
        for line in state.records(div, "sales_order_lines"):
            if line["Quantity"] > line["QuantityDelivered"]:
                undelivered[line["ID"]] = Decimal(str(line["Quantity"])) - Decimal(str(line["QuantityDelivered"]))
        codes = {item["ID"]: item["Code"] for item in state.records(div, "items")}
        for position in state.records(div, "stock_positions"):
            stock[(div, codes[position["ItemId"]])] += Decimal(str(position["CurrentStock"]))
    assert len({code for _div, code in stock}) < len(stock) and len({name for _d, name, _m in revenue}) < len(revenue)

    found = {(div, name, month): amount for div, name, month, amount in run(db, "revenue per customer per month")}
    assert found == dict(revenue) and found
    assert {(div, due): amount for div, due, amount in run(db, "open receivables by due date")} == dict(open_by_due)
    assert open_by_due
    rows = run(db, "sales order lines not yet delivered")
    assert {str(row[1]): row[-1] for row in rows} == undelivered and undelivered
    found_stock = {(div, code): amount for div, code, _description, amount in run(db, "stock per item")}
    assert found_stock == dict(stock) and stock
