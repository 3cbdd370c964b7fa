"""Fixtures for the connect flow and token lifecycle: a sandbox on a FakeClock, settings whose redirect URI points
at a free local port, a "browser" that follows Exact's redirects, and the CLI in process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from models import Connection, ConnectionToken
from syncs.core.settings import Settings
from syncs.lifecycle.connect_flow import Connected, ConnectFlow
from syncs.sandbox.server import SandboxServer
from syncs.sandbox.state import SandboxConfig, SandboxState
from tests.support.cli import CliInvoke, aimed_at, cli_invoker
from tests.support.clock import FakeClock
from tests.support.net import free_port

CURRENT, SECOND, THIRD = 124132, 124133, 124134


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxState(SandboxConfig(minutely_limit=None, daily_limit=None), clock=clock)) as server:
        yield server


@pytest.fixture
def life_settings(settings: Settings, sandbox: SandboxServer) -> Settings:
    return aimed_at(settings, sandbox, exact_redirect_uri=f"http://127.0.0.1:{free_port()}/oauth/callback")


@pytest.fixture
def flow(
    life_settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis[Any], clock: FakeClock
) -> ConnectFlow:
    return ConnectFlow(life_settings, db, redis_client, clock)


def consent(url: str) -> str:
    """Be the user at Exact's consent page: returns the redirect (to our callback) Exact answers with."""
    response = httpx.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    return str(response.headers["location"])


def callback_params(location: str) -> dict[str, str]:
    """What a callback handler sees: the redirect's query, URL-decoded."""
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def connect_via_flow(flow: ConnectFlow, name: str = "acme", region: str | None = "nl") -> Connected:
    url, state = flow.begin(name, region)
    params = callback_params(consent(url))
    return flow.complete(params.get("state"), params.get("code"), params.get("error"), expected_state=state)


def stored(db: sessionmaker[Session]) -> tuple[int, int]:
    """(connections, token rows): what a failed connect must leave at zero."""
    with db() as session:
        return (
            session.scalar(select(func.count()).select_from(Connection)) or 0,
            session.scalar(select(func.count()).select_from(ConnectionToken)) or 0,
        )


class ServerThread:
    """uvicorn serving `app` on a daemon thread (what `exact-sync serve` runs in the foreground)."""

    def __init__(self, app: Starlette, port: int) -> None:
        self.port = port
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "web server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def cli(life_settings: Settings, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> Iterator[CliInvoke]:
    """`exact-sync ...` in process, with the test's settings in the environment as in production."""
    yield from cli_invoker(life_settings, monkeypatch)
