"""Import refuses a refresh token stored twice and unreasonable KDF counts; key rotation re-encrypts every secret;
a ciphertext moved to another row does not decrypt."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, ConnectionToken
from syncs.core.crypto import TokenCipher
from syncs.core.errors import ConfigurationError
from syncs.core.settings import Settings
from syncs.lifecycle.connections import add_connection
from syncs.lifecycle.keys import rotate_keys
from syncs.lifecycle.transfer import export_connection, import_connection, seal, unseal
from syncs.tokens.pair import TokenPair
from syncs.tokens.rescue import RescueCopies
from syncs.tokens.store import TokenStore
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock

PASS = "correct horse battery staple"


def register(db: sessionmaker[Session], cipher: TokenCipher, name: str, refresh: str, **changes: Any) -> int:
    with db.begin() as session:
        connection = add_connection(
            session, TokenStore(db, cipher), name, "nl", TokenPair(f"a-{refresh}", refresh, None, None)
        )
        for key, value in changes.items():
            setattr(connection, key, value)
        return connection.id


def test_the_same_export_cannot_be_imported_twice(
    life_settings: Settings, db: sessionmaker[Session], tmp_path: Path, clock: FakeClock
) -> None:
    key = life_settings.token_encryption_key
    assert key is not None
    cipher = TokenCipher(key.get_secret_value())
    register(db, cipher, "acme", "r-acme")
    target = export_connection(life_settings, db, "acme", PASS, tmp_path / "acme.exact-sync", clock)
    blob = target.read_bytes()
    first = import_connection(life_settings, db, blob, PASS, "acme-b", clock=clock)
    with pytest.raises(ConfigurationError, match="already imported here as connection 'acme-b'"):
        import_connection(life_settings, db, blob, PASS, "acme-c", clock=clock)

    # A file without an export id (or another export of the same pair) is caught by the refresh token's hash,
    # even after the first import's id is gone.
    with db.begin() as session:
        session.execute(update(Connection).values(import_id=None))
    with pytest.raises(ConfigurationError, match="already stored here, by connection 'acme-b'"):
        import_connection(life_settings, db, blob, PASS, "acme-c", clock=clock)
    with db() as session:
        names = session.scalars(select(Connection.name).order_by(Connection.name)).all()
        stored_hash = session.get_one(ConnectionToken, first.id).refresh_token_hash
    assert names == ["acme", "acme-b"]
    assert stored_hash is not None and b"r-acme" not in stored_hash


def test_an_old_export_is_imported_with_a_warning(
    life_settings: Settings, db: sessionmaker[Session], tmp_path: Path, clock: FakeClock
) -> None:
    key = life_settings.token_encryption_key
    assert key is not None
    register(db, TokenCipher(key.get_secret_value()), "acme", "r-acme")
    blob = export_connection(life_settings, db, "acme", PASS, tmp_path / "acme.exact-sync", clock).read_bytes()
    clock.advance(timedelta(days=3).total_seconds())
    warnings: list[str] = []
    import_connection(life_settings, db, blob, PASS, "acme-b", warn=warnings.append, clock=clock)
    assert any("this export was made 3 day(s) ago" in w for w in warnings), warnings


@pytest.mark.parametrize("iterations", [2**31 - 1, -5, 0, 99_999, "600000", 600_000.0, True, None])
def test_kdf_iterations_outside_the_sane_range_fail_at_once(iterations: object) -> None:
    envelope = json.loads(seal({"x": 1}, PASS))
    envelope["iterations"] = iterations
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=r"KDF iteration count .* outside the accepted range"):
        unseal(json.dumps(envelope).encode(), PASS)
    assert time.monotonic() - started < 1


def test_rotation_re_encrypts_every_secret_under_the_first_key(
    life_settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis[Any], cli: CliInvoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = TokenCipher(old)
    active = register(db, before, "active", "r1")
    register(db, before, "gone", "r2", status=ConnectionStatus.DISABLED)
    pending = register(db, before, "pending", "r3", status=ConnectionStatus.REAUTH_REQUIRED)
    legacy = register(db, before, "legacy", "r4")
    with db.begin() as session:  # written before ciphertexts were bound (plain Fernet, no hash)
        row = session.get_one(ConnectionToken, legacy)
        row.refresh_token, row.access_token, row.refresh_token_hash = Fernet(old).encrypt(b"r4"), None, None
    copies = RescueCopies(redis_client, before, life_settings.redis_key_prefix)
    redis_client.set(copies.key(pending), copies.seal(pending, TokenPair("a5", "r5", None, None), "r3"), ex=1000)

    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", f"{new},{old}")
    from syncs.core.settings import get_settings

    get_settings.cache_clear()
    result = cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "4 connection(s) (1 active, 1 disabled, 1 reauth_required, 1 active)" not in result.output
    assert (
        "token pairs re-encrypted under the first key: 4 connection(s) (2 active, 1 disabled, 1 reauth_required)"
        in (result.output)
    )
    assert "7 secret(s): 6 under an older key, 1 in the unbound pre-binding format; 0 already current" in result.output
    assert "rescue copies in Redis re-encrypted: 1" in result.output and "unreadable (left as they were): none" in (
        result.output
    )
    assert 0 < (redis_client.ttl(copies.key(pending)) or 0) <= 1000  # the copy keeps its expiry

    after = TokenCipher(new)  # the old key is retired: everything still reads
    store = TokenStore(db, after)
    assert [store.load(i).refresh_token for i in (active, pending, legacy)] == ["r1", "r3", "r4"]
    rescued = RescueCopies(redis_client, after, life_settings.redis_key_prefix).read(pending)
    assert rescued is not None and rescued.pair.refresh_token == "r5"
    again = rotate_keys(db, redis_client, TokenCipher(f"{new},{old}"), life_settings.redis_key_prefix)
    assert (sum(again.rewritten_connections.values()), again.current_connections) == (0, 4)
    assert again.rescue_copies_current == 1


def test_a_ciphertext_moved_to_another_connection_does_not_decrypt(
    life_settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis[Any]
) -> None:
    key = life_settings.token_encryption_key
    assert key is not None
    cipher = TokenCipher(key.get_secret_value())
    mine, theirs = register(db, cipher, "mine", "r-mine"), register(db, cipher, "theirs", "r-theirs")
    with db.begin() as session:
        a, b = session.get_one(ConnectionToken, mine), session.get_one(ConnectionToken, theirs)
        a.refresh_token, b.refresh_token = b.refresh_token, a.refresh_token
    store = TokenStore(db, cipher)
    for connection_id in (mine, theirs):
        with pytest.raises(ConfigurationError, match="moved from another row"):
            store.load(connection_id)
    with db.begin() as session:  # an access token in the refresh token's place fails too
        row = session.get_one(ConnectionToken, mine)
        row.refresh_token = row.access_token or b""
    with pytest.raises(ConfigurationError, match="moved from another row"):
        store.load(mine)

    copies = RescueCopies(redis_client, cipher, life_settings.redis_key_prefix)
    redis_client.set(copies.key(mine), copies.seal(theirs, TokenPair("a", "r", None, None), "r-theirs"))
    assert copies.read(mine) is None  # refused (and deleted), never adopted
    assert redis_client.get(copies.key(mine)) is None
