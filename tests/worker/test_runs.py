"""execute_sync against a sandbox: the run record, the lock, divisions, and how failures are recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import Account, Connection, ConnectionStatus, Division, SyncCursor, SyncRun
from syncs.core.errors import ConfigurationError, ConnectionInactiveError, ReauthRequiredError
from syncs.core.settings import Settings
from syncs.sandbox.server import SandboxServer
from tests.support.cli import settings_env
from tests.worker.conftest import CURRENT, ROOT, wait_for
from worker.locks import connection_lock
from worker.runs import execute_sync

SECOND = 124133


def connection(db: sessionmaker[Session], name: str = "acme") -> Connection:
    with db() as session:
        return session.scalars(select(Connection).where(Connection.name == name)).one()


def test_a_run_syncs_the_current_division_and_records_itself(
    sandbox_settings: Settings, db: sessionmaker[Session], add_sandbox_connection: Callable[..., Any]
) -> None:
    add_sandbox_connection("acme")
    seen: list[tuple[str, int]] = []
    outcome = execute_sync(sandbox_settings, "acme", progress=lambda stream, rows: seen.append((stream, rows)))
    assert outcome.status == "succeeded"
    assert outcome.divisions == (CURRENT, SECOND)  # every active division the login has (issue 3)
    assert outcome.inserted > 0 and outcome.api_calls > 0
    assert {stream for stream, _ in seen} >= {"accounts", "sales_invoices"}
    acme = connection(db)
    assert acme.current_division == CURRENT and acme.last_sync_at is not None
    with db() as session:
        run = session.scalars(select(SyncRun)).one()
        assert (run.status, run.trigger, run.full) == ("succeeded", "cli", False)
        assert (run.rows_inserted, run.api_calls) == (outcome.inserted, outcome.api_calls)
        assert run.finished_at is not None and run.error is None
        division = session.get_one(Division, (acme.id, CURRENT))
        assert division.is_current
        assert session.scalars(select(SyncCursor.entity).where(SyncCursor.division == CURRENT)).all()

    again = execute_sync(sandbox_settings, "acme", entities=["accounts"], trigger="beat")
    assert (again.status, again.inserted, again.updated) == ("succeeded", 0, 0)


def test_every_enabled_available_division_is_synced(
    sandbox_settings: Settings, db: sessionmaker[Session], add_sandbox_connection: Callable[..., Any]
) -> None:
    add_sandbox_connection("acme", "--division", str(CURRENT))
    acme = connection(db)
    with db.begin() as session:
        session.add(Division(connection_id=acme.id, code=SECOND))
    outcome = execute_sync(sandbox_settings, "acme", entities=["accounts"])
    assert outcome.divisions == (CURRENT, SECOND)
    with db() as session:
        divisions = set(session.scalars(select(Account.division)).all())
    assert divisions == {CURRENT, SECOND}

    with db.begin() as session:
        session.execute(update(Division).where(Division.code == SECOND).values(sync_enabled=False))
    assert execute_sync(sandbox_settings, "acme", entities=["accounts"]).divisions == (CURRENT,)


def test_unknown_connection_and_entity_are_configuration_errors(
    sandbox_settings: Settings, db: sessionmaker[Session], add_sandbox_connection: Callable[..., Any]
) -> None:
    with pytest.raises(ConfigurationError, match="unknown connection 'ghost'"):
        execute_sync(sandbox_settings, "ghost")
    add_sandbox_connection("acme")
    with pytest.raises(ConfigurationError, match="valid: accounts, contacts, "):
        execute_sync(sandbox_settings, "acme", entities=["widgets"])
    with db() as session:
        assert session.scalars(select(SyncRun)).all() == []


def test_inactive_connection_is_refused_with_its_reason(
    sandbox_settings: Settings, db: sessionmaker[Session], add_sandbox_connection: Callable[..., Any]
) -> None:
    add_sandbox_connection("acme")
    with db.begin() as session:
        session.execute(update(Connection).values(status=ConnectionStatus.DISABLED, status_reason="paused by finance"))
    with pytest.raises(ConnectionInactiveError, match="disabled: paused by finance"):
        execute_sync(sandbox_settings, "acme")


def test_a_connection_never_syncs_twice_at_once(
    sandbox_settings: Settings, db: sessionmaker[Session], add_sandbox_connection: Callable[..., Any]
) -> None:
    add_sandbox_connection("acme")
    with connection_lock(sandbox_settings.database_url, connection(db).id) as held:
        assert held
        outcome = execute_sync(sandbox_settings, "acme")
    assert (outcome.status, outcome.run_id) == ("skipped", None)
    with db() as session:
        assert session.scalars(select(SyncRun)).all() == [], "a skipped run records nothing"
    assert execute_sync(sandbox_settings, "acme").status == "succeeded", "the lock is released afterwards"


def test_the_lock_dies_with_a_killed_process_and_its_run_is_marked_interrupted(
    sandbox_settings: Settings, db: sessionmaker[Session], add_sandbox_connection: Callable[..., Any]
) -> None:
    add_sandbox_connection("acme")
    acme_id = connection(db).id
    with db.begin() as session:  # what a worker killed mid-run leaves behind
        session.add(SyncRun(connection_id=acme_id, entities=["accounts"], trigger="beat", status="running"))
    holder = textwrap.dedent(
        f"""
        import sys, time
        from syncs.core.settings import Settings
        from worker.locks import connection_lock
        with connection_lock(Settings().database_url, {acme_id}) as held:
            print("held" if held else "busy", flush=True)
            time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder],
        cwd=ROOT,
        env={**os.environ, **settings_env(sandbox_settings)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        assert execute_sync(sandbox_settings, "acme").status == "skipped"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        outcome = wait_for(
            lambda: (o := execute_sync(sandbox_settings, "acme")).status == "succeeded" and o, timeout=10
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with db() as session:
        runs = session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
    assert [(r.status, r.error) for r in runs] == [
        ("failed", "interrupted (worker stopped)"),
        ("succeeded", None),
    ]
    assert runs[1].id == outcome.run_id  # type: ignore[attr-defined]


def test_a_dead_refresh_token_fails_the_run_and_marks_the_connection(
    sandbox_settings: Settings, db: sessionmaker[Session], cli: Callable[..., Any], sandbox: SandboxServer
) -> None:
    dead = sandbox.state.issue_tokens()["refresh_token"]
    sandbox.state.revoke_refresh_tokens()
    assert cli("connections", "add", "acme", "--region", "nl", "--refresh-token", dead).exit_code == 0
    with pytest.raises(ReauthRequiredError):
        execute_sync(sandbox_settings, "acme")
    with db() as session:
        run = session.scalars(select(SyncRun)).one()
    assert run.status == "failed" and run.finished_at is not None
    assert run.error is not None and run.error.startswith("ReauthRequiredError")
    assert dead not in run.error
    acme = connection(db)
    assert acme.status == ConnectionStatus.REAUTH_REQUIRED and acme.last_sync_at is None
    with pytest.raises(ConnectionInactiveError, match="reauth_required"):
        execute_sync(sandbox_settings, "acme")
