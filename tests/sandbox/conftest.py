"""Fixtures: a sandbox on a free port driven by a fake clock, and a client holding a fresh access token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from syncs.sandbox.server import SandboxServer
from syncs.sandbox.state import SandboxConfig, SandboxState
from tests.support.clock import FakeClock

WINTER = datetime(2027, 1, 15, 12, 0, tzinfo=UTC).timestamp()
SECOND = 124133
FIRST = 124132
ACCOUNT_SELECT = "ID,Code,Name,IsSales,Timestamp,Modified"
LINE_SELECT = "ID,InvoiceID,LineNumber,Quantity,AmountFC,AmountFCExclVat,InvoiceNumber,InvoiceDate,Timestamp"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=WINTER)


@pytest.fixture
def make_sandbox(clock: FakeClock) -> Iterator[Callable[..., SandboxServer]]:
    servers: list[SandboxServer] = []

    def make(**config: object) -> SandboxServer:
        settings = {"minutely_limit": None, "daily_limit": None, "seed": False, **config}
        server = SandboxServer(SandboxState(SandboxConfig(**settings), clock=clock))  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_sandbox(page_size=3)


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """A client with a valid bearer token for `sandbox`."""
    token = sandbox.state.issue_tokens()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10) as client:
        yield client


def follow(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> list[list[dict[str, Any]]]:
    """All pages of a sync query, following `__next` verbatim."""
    pages: list[list[dict[str, Any]]] = []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()["d"]
        pages.append(body["results"])
        next_url = body.get("__next")
        if not next_url:
            return pages
        response = client.get(next_url)


def sync_params(since: int = 0, select: str = ACCOUNT_SELECT) -> dict[str, str]:
    return {"$filter": f"Timestamp gt {since}L", "$select": select}
