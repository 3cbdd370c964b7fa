"""The `exact-sync` CLI in process (typer's CliRunner) against a real database and sandbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models import Account, Connection, ConnectionStatus, ConnectionToken, Division, SyncCursor, SyncRun
from syncs.core.crypto import TokenCipher
from syncs.core.db import session_factory
from syncs.core.settings import Settings
from syncs.sandbox.server import SandboxServer
from syncs.tokens.store import TokenStore
from tests.support.cli import CliInvoke
from tests.worker.conftest import CURRENT


def test_migrate_is_idempotent(cli: CliInvoke) -> None:
    for _ in range(2):
        result = cli("migrate")
        assert result.exit_code == 0, result.output
        assert "newest schema" in result.output


def test_add_stores_tokens_encrypted_and_list_shows_it(
    cli: CliInvoke, db: sessionmaker[Session], sandbox_settings: Settings
) -> None:
    result = cli(
        "connections", "add", "acme", "--region", "be", "--refresh-token", "r-secret",
        "--access-token", "a-secret", "--expires-in", "600", "--division", "42", "--interval", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with db() as session:
        acme = session.scalars(select(Connection)).one()
        assert (acme.name, acme.region, acme.sync_interval_minutes, acme.current_division) == (
            "acme",
            "be",
            5,
            42,
        )
        assert acme.status == ConnectionStatus.ACTIVE and acme.next_sync_at is None
        row = session.get_one(ConnectionToken, acme.id)
        assert b"r-secret" not in row.refresh_token and row.expires_at is not None
        assert session.get_one(Division, (acme.id, 42)).is_current
    key = sandbox_settings.token_encryption_key
    assert key is not None
    pair = TokenStore(db, TokenCipher(key.get_secret_value())).load(acme.id)
    assert (pair.refresh_token, pair.access_token, pair.expires_in) == ("r-secret", "a-secret", 600)

    listed = cli("connections", "list")
    assert listed.exit_code == 0
    assert "acme" in listed.output and "be" in listed.output and "5 min" in listed.output
    assert "secret" not in listed.output


def test_add_without_access_token_uses_default_interval(cli: CliInvoke, db: sessionmaker[Session]) -> None:
    assert cli("connections", "add", "acme", "--region", "nl", "--refresh-token", "r").exit_code == 0
    with db() as session:
        acme = session.scalars(select(Connection)).one()
        assert acme.sync_interval_minutes == 15 and acme.current_division is None
        assert session.get_one(ConnectionToken, acme.id).received_at is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region", "xx", "--refresh-token", "r"], "unknown region 'xx'"),
        (["--region", "nl", "--refresh-token", "r", "--expires-in", "600"], "--expires-in only"),
    ],
)
def test_add_rejects_bad_input_with_one_line(cli: CliInvoke, args: list[str], message: str) -> None:
    result = cli("connections", "add", "acme", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_duplicate_name_and_missing_key_are_clear_errors(cli: CliInvoke, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("connections", "add", "acme", "--region", "nl", "--refresh-token", "r").exit_code == 0
    again = cli("connections", "add", "acme", "--region", "nl", "--refresh-token", "r")
    assert again.exit_code == 2 and "already exists" in again.output

    from syncs.core.settings import get_settings

    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", "")
    get_settings.cache_clear()
    keyless = cli("connections", "add", "other", "--region", "nl", "--refresh-token", "r")
    assert keyless.exit_code == 2 and "TOKEN_ENCRYPTION_KEY is not set" in keyless.output


def test_remove_deletes_the_connection_and_its_tokens(cli: CliInvoke, db: sessionmaker[Session]) -> None:
    assert cli("connections", "add", "acme", "--region", "nl", "--refresh-token", "r").exit_code == 0
    result = cli("connections", "remove", "acme")
    assert result.exit_code == 0, result.output
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Connection)) == 0
        assert session.scalar(select(func.count()).select_from(ConnectionToken)) == 0
    missing = cli("connections", "remove", "acme")
    assert missing.exit_code == 2 and "unknown connection 'acme'" in missing.output


def test_run_in_process_then_status_shows_run_and_cursors(
    cli: CliInvoke, add_sandbox_connection: Callable[..., Any], db: sessionmaker[Session]
) -> None:
    add_sandbox_connection("acme")
    result = cli("run", "acme", "--entity", "accounts")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    with db() as session:
        run = session.scalars(select(SyncRun)).one()
        assert run.entities == ["accounts"] and run.trigger == "cli"
        assert session.scalar(select(func.count()).select_from(Account)) == run.rows_inserted > 0

    status = cli("status")
    assert status.exit_code == 0, status.output
    assert "acme" in status.output and "active" in status.output
    assert f"run #{run.id}" in status.output and "succeeded" in status.output
    assert str(CURRENT) in status.output and "accounts" in status.output
    assert "resumes next run" not in status.output
    with db.begin() as session:  # as a run cut short after a page leaves it
        session.execute(update(SyncCursor).values(resume_url="http://exact/next", pending_timestamp=42))
    assert "resumes next run (committed up to 42)" in cli("status", "acme").output
    assert cli("status", "ghost").exit_code == 2


def test_run_failure_exits_1_with_one_line(cli: CliInvoke, sandbox: SandboxServer, db: sessionmaker[Session]) -> None:
    dead = sandbox.state.issue_tokens()["refresh_token"]
    sandbox.state.revoke_refresh_tokens()
    assert cli("connections", "add", "acme", "--region", "nl", "--refresh-token", dead).exit_code == 0
    result = cli("run", "acme")
    assert result.exit_code == 1
    assert "ReauthRequiredError" in result.output and "Traceback" not in result.output
    status = cli("status", "acme")
    assert "reauth_required" in status.output and "failed" in status.output


def test_run_unknown_entity_lists_the_valid_ones(cli: CliInvoke, add_sandbox_connection: Callable[..., Any]) -> None:
    add_sandbox_connection("acme")
    result = cli("run", "acme", "-e", "widgets")
    assert result.exit_code == 2
    assert "valid: accounts, contacts" in result.output


def test_demo_works_without_an_encryption_key(
    cli: CliInvoke, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncs.core.settings import get_settings

    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", "")
    monkeypatch.setenv("EXACT_BASE_URL", "")
    get_settings.cache_clear()
    result = cli("demo")
    assert result.exit_code == 0, result.output
    assert "ephemeral key" in result.output
    assert "accounts" in result.output and "sales_invoice_lines" in result.output
    with db() as session:
        demo = session.scalars(select(Connection)).one()
        assert demo.name == "demo" and demo.status == ConnectionStatus.DISABLED
        assert (session.scalar(select(func.count()).select_from(Account)) or 0) > 0
        assert session.scalars(select(SyncRun.status)).all() == ["succeeded"]


def test_demo_registers_against_a_running_sandbox(
    cli: CliInvoke, db: sessionmaker[Session], sandbox: SandboxServer, sandbox_settings: Settings
) -> None:
    """What the compose `demo` service does: register only, leave the syncing to beat and the worker."""
    for expected in ("registered", "already registered"):
        result = cli("demo", "--sandbox-url", sandbox.base_url, "--register-only")
        assert result.exit_code == 0, result.output
        assert expected in result.output
    with session_factory(sandbox_settings.database_url)() as session:
        demo = session.scalars(select(Connection)).one()
        assert demo.status == ConnectionStatus.ACTIVE
        assert session.scalar(select(func.count()).select_from(SyncRun)) == 0
    assert cli("run", "demo").exit_code == 0


def test_demo_replaces_a_registration_whose_tokens_died(
    cli: CliInvoke, db: sessionmaker[Session], sandbox: SandboxServer
) -> None:
    assert cli("demo", "--sandbox-url", sandbox.base_url, "--register-only").exit_code == 0
    with db.begin() as session:
        demo = session.scalars(select(Connection)).one()
        demo.status = ConnectionStatus.REAUTH_REQUIRED
        first_id = demo.id
    result = cli("demo", "--sandbox-url", sandbox.base_url, "--register-only")
    assert result.exit_code == 0 and "registered against" in result.output
    with db() as session:
        demo = session.scalars(select(Connection)).one()
        assert demo.status == ConnectionStatus.ACTIVE and demo.id != first_id


def test_status_shows_each_entity_interval_set_by_connections_set(
    cli: CliInvoke, add_sandbox_connection: Callable[..., Any]
) -> None:
    add_sandbox_connection("acme")
    assert cli("run", "acme", "--entity", "items", "--entity", "employees", "--entity", "journals").exit_code == 0
    rows = _entity_rows(cli)
    assert (rows["items"], rows["employees"], rows["journals"], rows["deleted"]) == ("4 h", "1 d", "1 d", "every run")
    assert cli("connections", "set", "acme", "--entity", "items", "--every", "1h").exit_code == 0
    assert cli("connections", "set", "acme", "--entity", "employees", "--off").exit_code == 0
    assert cli("connections", "set", "acme", "--entity", "journals", "--every", "90m").exit_code == 0
    rows = _entity_rows(cli)
    assert (rows["items"], rows["employees"], rows["journals"]) == ("1 h", "off", "90 min")


def _entity_rows(cli: CliInvoke) -> dict[str, str]:
    """The `every` cell of each entity row of `status acme` (division, entity, every, cursor, ...)."""
    status = cli("status", "acme")
    assert status.exit_code == 0, status.output
    cells = [re.split(r"\s{2,}", line.strip()) for line in status.output.splitlines()]  # cells hold single spaces
    return {row[1]: row[2] for row in cells if len(row) > 4 and row[0] == str(CURRENT)}
