"""Reconnecting a reauth_required connection resumes from its cursors; export/import moves a connection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, Connection, ConnectionStatus, SyncCursor
from syncs.core.errors import ConnectionInactiveError, ReauthRequiredError
from syncs.core.settings import Settings, get_settings
from syncs.lifecycle.connect_flow import ConnectFlow
from syncs.lifecycle.transfer import export_connection, import_connection
from syncs.sandbox.server import SandboxServer
from syncs.tokens.pair import TokenPair
from syncs.tokens.rescue import RescueCopies
from tests.lifecycle.conftest import CURRENT, connect_via_flow
from tests.support.cadence import every_run_streams
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock
from tests.support.tokens import token_store
from worker.runs import execute_sync


def cursors(db: sessionmaker[Session], name: str) -> dict[tuple[int, str], int]:
    with db() as session:
        rows = session.execute(
            select(SyncCursor.division, SyncCursor.entity, SyncCursor.timestamp)
            .join(Connection, Connection.id == SyncCursor.connection_id)
            .where(Connection.name == name)
        ).all()
    return {(division, entity): timestamp for division, entity, timestamp in rows}


def accounts(db: sessionmaker[Session]) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(Account)) or 0


def total_api_calls(sandbox: SandboxServer) -> int:
    return sum(sandbox.state.counters.api_calls.values())


def test_reconnect_of_a_reauth_required_connection_resumes_from_its_cursors(
    sandbox: SandboxServer, flow: ConnectFlow, life_settings: Settings, db: sessionmaker[Session], clock: FakeClock
) -> None:
    sandbox.state.configure(page_size=10)  # a full download takes many pages; a resumed one a page per stream
    connect_via_flow(flow)
    sandbox.state.reset_counters()
    first = execute_sync(life_settings, "acme", clock=clock)
    first_calls = total_api_calls(sandbox)
    assert first.inserted > 0
    before = cursors(db, "acme")

    sandbox.state.revoke_refresh_tokens()  # e.g. consent withdrawn, or a lost token response
    clock.advance(700)
    with pytest.raises(ReauthRequiredError):
        execute_sync(life_settings, "acme", clock=clock)
    with db() as session:
        acme = session.scalars(select(Connection)).one()
        assert acme.status == ConnectionStatus.REAUTH_REQUIRED and "exact-sync connect acme" in (
            acme.status_reason or ""
        )

    sandbox.state.create_account(CURRENT, Name="New Customer BV")
    again = connect_via_flow(flow, "acme", None)
    assert again.reconnected
    with db() as session:
        acme = session.scalars(select(Connection)).one()
        assert (acme.status, acme.status_reason) == (ConnectionStatus.ACTIVE, None)
    assert cursors(db, "acme") == before  # kept
    rows_before = accounts(db)
    sandbox.state.reset_counters()
    resumed = execute_sync(life_settings, "acme", clock=clock)
    assert (resumed.inserted, resumed.updated) == (1, 0)
    assert accounts(db) == rows_before + 1
    # One page per stream (accounts, sales invoices, deletions) and division: nothing re-downloaded.
    assert total_api_calls(sandbox) == 2 * every_run_streams() < first_calls


def test_export_disables_here_and_the_import_syncs(
    cli: CliInvoke,
    sandbox: SandboxServer,
    flow: ConnectFlow,
    life_settings: Settings,
    db: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
) -> None:
    connect_via_flow(flow)
    assert execute_sync(life_settings, "acme", clock=clock).inserted > 0
    exported_cursors = cursors(db, "acme")
    target = tmp_path / "acme.exact-sync"
    monkeypatch.setenv("EXACT_SYNC_EXPORT_PASSPHRASE", "correct horse battery staple")

    result = cli("connections", "export", "acme", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert target.stat().st_mode & 0o077 == 0
    assert b"refresh_token" not in target.read_bytes()  # encrypted
    with db() as session:
        acme = session.scalars(select(Connection).where(Connection.name == "acme")).one()
        assert acme.status == ConnectionStatus.DISABLED
        assert (acme.status_reason or "").startswith("exported to another deployment at")
    with pytest.raises(ConnectionInactiveError):
        execute_sync(life_settings, "acme", clock=clock)
    again = cli("connections", "export", "acme", "--out", str(tmp_path / "twice"))
    assert again.exit_code == 2 and "disabled" in again.output

    monkeypatch.setenv("EXACT_SYNC_EXPORT_PASSPHRASE", "wrong")
    get_settings.cache_clear()
    wrong = cli("connections", "import", str(target), "--name", "acme-b")
    assert wrong.exit_code == 2 and "wrong passphrase" in wrong.output

    # The other deployment has its own at-rest key (the file does not depend on it).
    monkeypatch.setenv("EXACT_SYNC_EXPORT_PASSPHRASE", "correct horse battery staple")
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    imported = cli("connections", "import", str(target), "--name", "acme-b")
    assert imported.exit_code == 0, imported.output
    assert cursors(db, "acme-b") == exported_cursors
    other = life_settings.model_copy(update={"token_encryption_key": SecretStr(os.environ["TOKEN_ENCRYPTION_KEY"])})
    sandbox.state.create_account(CURRENT, Name="After The Move BV")
    outcome = execute_sync(other, "acme-b", clock=clock)
    assert outcome.status == "succeeded" and (outcome.inserted, outcome.updated) == (1, 0)


def test_export_carries_a_rescued_pair_rather_than_the_dead_one_it_replaced(
    sandbox: SandboxServer,
    flow: ConnectFlow,
    life_settings: Settings,
    db: sessionmaker[Session],
    redis_client: redis.Redis[bytes],
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    connected = connect_via_flow(flow)
    store = token_store(db, life_settings)
    dead = store.load(connected.connection_id)
    # A refresh got a new pair from Exact, wrote its rescue copy, and its commit failed.
    rotated = sandbox.state.issue_tokens()
    live = TokenPair(rotated["access_token"], rotated["refresh_token"], clock.now(), 600.0)
    copies = RescueCopies(redis_client, store.cipher, life_settings.redis_key_prefix)
    redis_client.set(
        copies.key(connected.connection_id), copies.seal(connected.connection_id, live, dead.refresh_token)
    )

    target = export_connection(life_settings, db, "acme", "passphrase", tmp_path / "acme.exact-sync", clock)
    imported = import_connection(life_settings, db, target.read_bytes(), "passphrase", "acme-b")
    moved = store.load(imported.id)
    assert (moved.access_token, moved.refresh_token) == (live.access_token, live.refresh_token)
    assert redis_client.get(copies.key(connected.connection_id)) is None
