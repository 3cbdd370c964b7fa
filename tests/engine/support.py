"""Helpers for the engine tests: recorded Exact rows turned into sync rows, and an in-memory page source."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy.orm import Session

from syncs.core.errors import ExactRequestError, ExactServerError
from syncs.engine import deletions
from syncs.entities.base import PageResult, Row
from syncs.exact.odata import Page
from tests.support.recorded import recorded_get

DIVISION = 124132
FAKE_BASE = "https://start.exactonline.test"


def write_deletions(session: Session, division: int, rows: Sequence[Row]) -> PageResult:
    """A page of sync/Deleted rows, prepared and applied as the engine does it."""
    return deletions.write_prepared(session, division, deletions.prepare(division, rows))


def recorded_response(name: str, path: str) -> Any:
    """The `d` of a recorded GET response (tests/fixtures/exact-recorded)."""
    return recorded_get(name, path)["d"]


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
    """Serves rows like a sync endpoint: `Timestamp gt N` filter, a fixed page size, d.__next links.

    Rows come in Timestamp order, or in the order they were added when `timestamp_order` is False (Exact does not
    promise Timestamp order). A d.__next carries the filter and the offset reached (a positional skiptoken), so a
    stored one continues the same enumeration over the rows as they are then.
    `fail_after` makes a call for an endpoint raise after serving that many pages (a crash mid-run);
    `shuffle_pages` reverses the rows inside each page; `trailing_empty_page` ends a stream whose last page is
    full with a further, empty page (as Exact may); `refuse_resume` answers a d.__next passed as `resume_url`
    with 400 (an expired skiptoken). `calls` records each call, `served` the Timestamps of each page served.
    """

    def __init__(self, page_size: int = 1000) -> None:
        self.page_size = page_size
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.fail_after: dict[str, int] = {}
        self.shuffle_pages = False
        self.timestamp_order = True
        self.trailing_empty_page = False
        self.refuse_resume = False
        self.calls: list[tuple[int, str, dict[str, str], str | None]] = []
        self.served: list[tuple[str, list[int]]] = []

    def add(self, endpoint: str, *rows: dict[str, Any]) -> None:
        self.rows.setdefault(endpoint, []).extend(copy.deepcopy(list(rows)))

    def pages(
        self, division: int, endpoint: str, params: Mapping[str, str], *, resume_url: str | None = None
    ) -> Iterator[Page]:
        assert params["$select"], "a sync request needs $select"
        self.calls.append((division, endpoint, dict(params), resume_url))
        if resume_url is None:
            filter_, offset = params["$filter"], 0
        else:
            query = parse_qs(urlsplit(resume_url).query)
            assert urlsplit(resume_url).path == f"/api/v1/{division}/{endpoint}", resume_url
            filter_, offset = query["$filter"][0], int(query["$skiptoken"][0])
            if self.refuse_resume:
                raise ExactRequestError(f"GET {resume_url} answered 400: Invalid $skiptoken (test)", 400)
        match = re.fullmatch(r"Timestamp gt (\d+)L", filter_)
        assert match, filter_
        after = int(match.group(1))
        rows = [r for r in self.rows.get(endpoint, []) if int(r["Timestamp"]) > after]
        if self.timestamp_order:
            rows.sort(key=lambda r: int(r["Timestamp"]))
        served = 0
        while True:
            if endpoint in self.fail_after and served >= self.fail_after[endpoint]:
                raise ExactServerError("connection reset (test)", 502)
            chunk = rows[offset : offset + self.page_size]
            offset += len(chunk)
            more = offset < len(rows) or (self.trailing_empty_page and len(chunk) == self.page_size)
            query_string = urlencode({"$filter": filter_, "$select": params["$select"], "$skiptoken": offset})
            next_url = f"{FAKE_BASE}/api/v1/{division}/{endpoint}?{query_string}" if more else None
            served += 1
            self.served.append((endpoint, [int(r["Timestamp"]) for r in chunk]))
            yield Page(list(reversed(chunk)) if self.shuffle_pages else chunk, next_url)
            if next_url is None:
                return
