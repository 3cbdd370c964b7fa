"""Fixtures of the action tests: a synced connection `acme` on the sandbox, the three ways in (Python API, CLI, a
Celery task on a real worker) and what the sandbox and the synced tables hold."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import Result

from syncs.actions.perform import perform
from syncs.core.settings import Settings, get_settings
from syncs.sandbox.server import SandboxServer
from tests.support.cli import CliInvoke, settings_env
from tests.worker.conftest import CELERY, CURRENT, ROOT, stop
from worker.app import ACTION_TASK, create_app
from worker.runs import execute_sync

# Every entity an action writes, reads back into or refers to.
SYNCED = [
    "accounts", "contacts", "items", "item_groups", "gl_accounts", "journals", "sales_invoices", "sales_orders",
    "sales_order_lines", "quotations", "quotation_lines", "purchase_orders", "purchase_entries",
]  # fmt: skip
VOLATILE = {"timestamp", "synced_at"}  # what a later sync may change without the row's content changing
Way = Callable[[str, dict[str, Any], str | None], dict[str, Any]]


def calls(sandbox: SandboxServer) -> int:
    return sum(sandbox.state.counters.api_calls.values())


def writes(sandbox: SandboxServer) -> int:
    return sum(sandbox.state.counters.writes.values())


def content(db: sessionmaker[Session], table: str, key: str) -> dict[str, Any] | None:
    with db() as session:
        row = session.execute(
            text(f"SELECT * FROM {table} WHERE division = :d AND id = :k"), {"d": CURRENT, "k": uuid.UUID(key)}
        ).mappings().first()  # fmt: skip
    if row is None:
        return None
    found = {k: v for k, v in row.items() if k not in VOLATILE}
    if isinstance(found.get("raw"), dict):  # Exact's row as received: its Timestamp is the row version
        found["raw"] = {k: v for k, v in found["raw"].items() if k not in ("Timestamp", "__metadata")}
    return found


@pytest.fixture
def acme(sandbox: SandboxServer, sandbox_settings: Settings, add_sandbox_connection: Callable[..., Result]) -> Settings:
    """A connection whose division is synced (referenced records exist locally), with a 1 s HTTP timeout."""
    add_sandbox_connection("acme", "--division", str(CURRENT))
    execute_sync(sandbox_settings, "acme", entities=SYNCED)
    sandbox.state.configure(write_timeout_delay=1.5)
    return sandbox_settings.model_copy(update={"http_timeout_seconds": 1.0})


@pytest.fixture
def by_python(acme: Settings) -> Way:
    def way(action: str, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
        return perform(acme, "acme", action, payload, division=CURRENT, idempotency_key=key)

    return way


@pytest.fixture
def by_cli(acme: Settings, cli: CliInvoke, monkeypatch: pytest.MonkeyPatch) -> Way:
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()

    def way(action: str, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
        extra = ["--key", key] if key else []
        result = cli("action", action, "acme", "--division", str(CURRENT), "--json", json.dumps(payload), *extra)
        assert result.exit_code == 0, result.output
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    return way


@pytest.fixture
def action_worker(acme: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker; its log goes to a file (a pipe nobody reads would fill up and stall it)."""
    env = {**os.environ, **settings_env(acme, HTTP_TIMEOUT_SECONDS="1", ACTION_RETRY_SECONDS="0.2")}
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [CELERY, "-A", "worker.app", "worker", "-Q", acme.celery_queue, "--pool", "prefork", "--concurrency",
             "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{acme.celery_queue}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        yield process
        stop(process)


@pytest.fixture
def by_task(acme: Settings, action_worker: subprocess.Popen[bytes]) -> Way:
    app = create_app(acme)

    def way(action: str, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
        sent = app.send_task(ACTION_TASK, args=["acme", action, payload], kwargs={"division": CURRENT,
                             "idempotency_key": key}, queue=acme.celery_queue)  # fmt: skip
        result: dict[str, Any] = sent.get(timeout=90)
        return result

    return way
