"""Fixtures for the fault tests: connections on a sandbox, the "equal to the source" check, and private
Postgres and Redis servers that tests may restart without disturbing the machine's shared ones."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, SalesInvoiceLine, SyncCursor
from syncs.core.settings import Settings
from syncs.lifecycle.connections import add_connection
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from syncs.tokens.pair import TokenPair
from tests.support.cli import aimed_at
from tests.support.net import free_port
from tests.support.tokens import token_store

PG_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


def register(db: sessionmaker[Session], settings: Settings, state: SandboxState, name: str = "acme") -> int:
    """A connection holding a token pair the sandbox just issued (received now, by the sandbox's clock)."""
    tokens = state.issue_tokens()
    pair = TokenPair(tokens["access_token"], tokens["refresh_token"], state.clock.now(), float(tokens["expires_in"]))
    with db.begin() as session:
        return add_connection(session, token_store(db, settings), name, "nl", pair).id


def assert_equal_to_source(db: sessionmaker[Session], state: SandboxState, division: int) -> None:
    """Every live account and invoice line of the division, at its newest Timestamp; nothing else, once each."""
    with db() as session:
        accounts = session.execute(
            select(Account.id, Account.timestamp).where(Account.division == division, Account.deleted_at.is_(None))
        ).all()
        lines = session.execute(
            select(SalesInvoiceLine.id, SalesInvoiceLine.timestamp).where(
                SalesInvoiceLine.division == division, SalesInvoiceLine.deleted_at.is_(None)
            )
        ).all()
    assert sorted((str(i), t) for i, t in accounts) == sorted(
        (r["ID"], r["Timestamp"]) for r in state.accounts(division)
    )
    assert sorted(str(i) for i, _ in lines) == sorted(r["ID"] for r in state.invoice_lines(division))


@pytest.fixture
def slow_sandbox() -> Iterator[SandboxServer]:
    """Small pages and some latency: a first sync takes a few seconds. Short-lived access tokens, so tokens
    are refreshed while things break."""
    config = SandboxConfig(
        page_size=20, latency=0.02, minutely_limit=None, daily_limit=None, access_token_lifetime=4, refresh_window=2
    )
    server = SandboxServer(SandboxState(config))
    for division in server.state.divisions:
        server.state.generate(division, accounts=600, invoices=150, lines_per_invoice=2)
    server.start()
    yield server
    server.stop()


def aimed_at_fast_tokens(settings: Settings, sandbox: SandboxServer, **changes: Any) -> Settings:
    """Settings aimed at `sandbox` with a 2 s refresh window, so short-lived tokens refresh during the faults."""
    return aimed_at(settings, sandbox, token_refresh_window_seconds=2.0, token_refresh_margin_seconds=0.2, **changes)


def cursors(db: sessionmaker[Session]) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(SyncCursor)) or 0


@dataclass
class OwnRedis:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with tempfile.TemporaryDirectory() as directory:
        server = OwnRedis(free_port(), Path(directory))
        server.start()
        yield server
        server.stop()


@dataclass
class OwnPostgres:
    bin: Path
    data: Path
    port: int
    user: str | None  # initdb refuses root: run the server as this user

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/exact_sync"

    def run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self.run("pg_ctl", action, "-D", str(self.data / "db"), "-w", "-o", options, "-l", str(self.data / "log"),
                 *extra)  # fmt: skip


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if not PG_BINARIES:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    user = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="exact-sync-pg-"))
    if user:
        shutil.chown(directory, user)
    server = OwnPostgres(PG_BINARIES[-1].parent, directory, free_port(), user)
    try:
        server.run("initdb", "-D", str(directory / "db"), "-U", "postgres", "-A", "trust", "--no-sync")
        server.ctl("start")
        server.run("createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "exact_sync")
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.ctl("stop", "-m", "immediate")
        shutil.rmtree(directory, ignore_errors=True)
