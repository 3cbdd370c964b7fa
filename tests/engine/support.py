"""Helpers for the engine tests: recorded Exact rows turned into sync rows, and an in-memory page source."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from syncs.errors import ExactServerError

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "exact-recorded"
DIVISION = 124132


def recorded_response(name: str, path: str) -> Any:
    """The `d` of a recorded GET response; skips the test when the recordings are not checked out."""
    file = RECORDED / name
    if not file.exists():
        pytest.skip(f"recorded Exact responses not found at {RECORDED} (sibling checkout ../shared)")
    return json.loads(file.read_text())["api"]["get"][path]["response"]["d"]


def recorded_accounts() -> list[dict[str, Any]]:
    """Real crm/Accounts rows (padded Code, /Date()/, __metadata) plus the Timestamp/Division of sync rows."""
    rows = recorded_response("list-accounts.json", f"/api/v1/{DIVISION}/crm/Accounts")["results"]
    return [{**row, "Timestamp": 1000 + i, "Division": DIVISION} for i, row in enumerate(rows)]


def recorded_invoice_rows(timestamp: int = 5000) -> list[dict[str, Any]]:
    """Sync-shaped rows (one per line, header fields repeated) from a real invoice read with its lines."""
    path = f"/api/v1/{DIVISION}/salesinvoice/SalesInvoices(guid'a07b5588-4d7d-4872-88f9-30b2d256440d')"
    body = recorded_response("create-invoice.json", path)
    header = body["results"][0] if "results" in body else body
    lines = header["SalesInvoiceLines"]["results"]
    head = {k: v for k, v in header.items() if k not in ("SalesInvoiceLines", "SalesInvoiceOrderChargeLines")}
    return [{**head, **line, "Timestamp": timestamp} for line in lines]


class FakeExact:
    """Serves rows like a sync endpoint: `Timestamp gt N` filter, Timestamp order, fixed page size.

    `fail_after` makes the stream of an endpoint raise after that many pages (a crash mid-run);
    `shuffle_pages` reverses the rows inside each page (Exact does not promise an order within a page).
    """

    def __init__(self, page_size: int = 1000) -> None:
        self.page_size = page_size
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.fail_after: dict[str, int] = {}
        self.shuffle_pages = False
        self.calls: list[tuple[int, str, dict[str, str]]] = []

    def add(self, endpoint: str, *rows: dict[str, Any]) -> None:
        self.rows.setdefault(endpoint, []).extend(copy.deepcopy(list(rows)))

    def pages(self, division: int, endpoint: str, params: Mapping[str, str]) -> Iterator[list[dict[str, Any]]]:
        match = re.fullmatch(r"Timestamp gt (\d+)L", params["$filter"])
        assert match, params
        assert params["$select"], "a sync request needs $select"
        after = int(match.group(1))
        self.calls.append((division, endpoint, dict(params)))
        rows = sorted(
            (r for r in self.rows.get(endpoint, []) if int(r["Timestamp"]) > after),
            key=lambda r: int(r["Timestamp"]),
        )
        chunks = [rows[i : i + self.page_size] for i in range(0, len(rows), self.page_size)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            if endpoint in self.fail_after and number > self.fail_after[endpoint]:
                raise ExactServerError("connection reset (test)", 502)
            yield list(reversed(chunk)) if self.shuffle_pages else chunk
