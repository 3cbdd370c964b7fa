"""syncs.lifecycle.connections: the service functions behind `exact-sync connections` and `status`."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionToken, Division, SyncCursor, SyncRun
from syncs.core.crypto import TokenCipher
from syncs.core.errors import ConfigurationError
from syncs.lifecycle.connections import (
    add_connection,
    connection_reports,
    ensure_division,
    get_connection_by_name,
    list_connections,
    remove_connection,
)
from syncs.tokens.pair import TokenPair
from syncs.tokens.store import TokenStore

PAIR = TokenPair(access_token=None, refresh_token="r", received_at=None, expires_in=None)


@pytest.fixture
def store(db: sessionmaker[Session]) -> TokenStore:
    return TokenStore(db, TokenCipher(Fernet.generate_key().decode()))


def test_add_list_get_remove(db: sessionmaker[Session], store: TokenStore) -> None:
    with db.begin() as session:
        add_connection(session, store, "zeta", "nl", PAIR)
        add_connection(session, store, "alpha", "co.uk", PAIR, division=7, interval=30)
    with db() as session:
        assert [c.name for c in list_connections(session)] == ["alpha", "zeta"]
        alpha = get_connection_by_name(session, "alpha")
        assert (alpha.region, alpha.sync_interval_minutes, alpha.current_division) == ("co.uk", 30, 7)
        with pytest.raises(ConfigurationError, match="known connections: alpha, zeta"):
            get_connection_by_name(session, "beta")
    assert store.load(alpha.id).refresh_token == "r"
    with db.begin() as session:
        session.add(SyncRun(connection_id=alpha.id, entities=["accounts"], trigger="cli"))
        session.add(SyncCursor(connection_id=alpha.id, division=7, entity="accounts", timestamp=5))
    with db.begin() as session:
        remove_connection(session, "alpha")
    with db() as session:
        assert [c.name for c in list_connections(session)] == ["zeta"]
        for model in (ConnectionToken, SyncRun, SyncCursor, Division):
            assert session.scalar(select(func.count()).select_from(model)) == (1 if model is ConnectionToken else 0)


@pytest.mark.parametrize(
    ("name", "region", "interval", "message"),
    [
        ("acme", "nz", 15, "unknown Exact Online region 'nz'"),
        ("  ", "nl", 15, "1 to 64 characters"),
        ("acme", "nl", 0, "at least 1 minute"),
    ],
)
def test_add_validates(
    db: sessionmaker[Session], store: TokenStore, name: str, region: str, interval: int, message: str
) -> None:
    with db.begin() as session, pytest.raises(ConfigurationError, match=message):
        add_connection(session, store, name, region, PAIR, interval=interval)


def test_current_division_flag_follows_the_latest(db: sessionmaker[Session], store: TokenStore) -> None:
    with db.begin() as session:
        acme = add_connection(session, store, "acme", "nl", PAIR, division=1)
    with db.begin() as session:
        session.execute(
            Division.__table__.update().where(Division.code == 1).values(sync_enabled=False)  # type: ignore[attr-defined]
        )
        ensure_division(session, acme.id, 2, is_current=True)
        ensure_division(session, acme.id, 1, is_current=False)
    with db() as session:
        rows = session.scalars(select(Division).order_by(Division.code)).all()
        assert [(d.code, d.is_current, d.sync_enabled) for d in rows] == [(1, False, False), (2, True, True)]


def test_reports_carry_last_run_divisions_and_cursors(db: sessionmaker[Session], store: TokenStore) -> None:
    with db.begin() as session:
        acme = add_connection(session, store, "acme", "nl", PAIR, division=1)
        add_connection(session, store, "idle", "nl", PAIR)
    with db.begin() as session:
        session.add_all(
            [
                SyncRun(connection_id=acme.id, entities=["accounts"], trigger="beat", status="failed"),
                SyncRun(connection_id=acme.id, entities=["accounts"], trigger="beat", status="succeeded"),
                SyncCursor(connection_id=acme.id, division=1, entity="accounts", timestamp=9),
            ]
        )
    with db() as session:
        reports = {r.connection.name: r for r in connection_reports(session)}
        assert reports["acme"].last_run is not None and reports["acme"].last_run.status == "succeeded"
        assert [(c.entity, c.timestamp) for c in reports["acme"].cursors] == [("accounts", 9)]
        assert [d.code for d in reports["acme"].divisions] == [1]
        assert reports["acme"].token is not None
        assert reports["idle"].last_run is None and reports["idle"].cursors == []
        assert [r.connection.name for r in connection_reports(session, "idle")] == ["idle"]
        with pytest.raises(ConfigurationError):
            connection_reports(session, "ghost")
    assert isinstance(acme, Connection)
