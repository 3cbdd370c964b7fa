"""Moving a connection to another deployment: an encrypted export file and its import.

The file is Fernet-encrypted with a key derived from a passphrase (PBKDF2-HMAC-SHA256, random salt), not with
TOKEN_ENCRYPTION_KEY: the two deployments need not share their at-rest keys, and a passphrase travels more
easily (prompted, or EXACT_SYNC_EXPORT_PASSPHRASE). It holds the connection, its token pair, divisions and
cursors, so the importing side resumes where the exporting side stopped.

Exact's refresh tokens are single use: two deployments refreshing one token would lock the connection out.
So the export reads the pair with its token row locked (no refresh can run meanwhile; a waiting refresher
then finds the connection disabled) and marks the connection `disabled` in the same transaction, which commits
only after the file was written. For the same reason an import is refused when its refresh token is already
stored here (found by keyed hash, never by comparing tokens in the clear) or when the same file (its random
export id, unique in `connections.import_id`) was imported before.

The file's KDF iteration count is read before the passphrase can be checked, so only a sane range is accepted
(a huge count would hang the import, a negative one crash it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, ConnectionToken, Division, SyncCursor
from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.crypto import TokenCipher, bound_to
from syncs.core.errors import ConfigurationError
from syncs.core.settings import Settings
from syncs.lifecycle.connections import add_connection, get_connection_by_name, validate_name
from syncs.tokens.pair import TokenPair
from syncs.tokens.rescue import RescueCopies
from syncs.tokens.store import REFRESH_TOKEN_PURPOSE, TokenStore

FORMAT = "exact-sync-connection"
VERSION = 1
ITERATIONS = 600_000
ITERATIONS_ACCEPTED = range(100_000, 5_000_001)
OLD_EXPORT = timedelta(days=1)
REFRESH_TOKEN_LIFETIME = timedelta(days=30)  # Exact's refresh tokens expire 30 days after issue


def _fernet(passphrase: str, salt: bytes, iterations: int) -> Fernet:
    if not passphrase:
        raise ConfigurationError("an export passphrase must not be empty")
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase.encode())))


def seal(payload: dict[str, Any], passphrase: str) -> bytes:
    salt = secrets.token_bytes(16)
    token = _fernet(passphrase, salt, ITERATIONS).encrypt(json.dumps(payload).encode())
    envelope = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": "pbkdf2-sha256",
        "iterations": ITERATIONS,
        "salt": base64.b64encode(salt).decode(),
        "data": token.decode(),
    }
    return json.dumps(envelope, indent=1).encode()


def unseal(blob: bytes, passphrase: str) -> dict[str, Any]:
    try:
        envelope = json.loads(blob)
        if envelope.get("format") != FORMAT or envelope.get("version") != VERSION:
            raise ValueError("not an exact-sync connection export")
        fernet = _fernet(passphrase, base64.b64decode(envelope["salt"]), _iterations(envelope["iterations"]))
        data: dict[str, Any] = json.loads(fernet.decrypt(envelope["data"].encode()))
    except InvalidToken:
        raise ConfigurationError("cannot decrypt the export: wrong passphrase or a damaged file") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"not a readable exact-sync export file: {exc}") from None
    return data


def _iterations(value: object) -> int:
    if type(value) is not int or value not in ITERATIONS_ACCEPTED:
        raise ValueError(
            f"its KDF iteration count {value!r} is outside the accepted range "
            f"{ITERATIONS_ACCEPTED.start:,} to {ITERATIONS_ACCEPTED.stop - 1:,} (a damaged or foreign file)"
        )
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _store(settings: Settings, sessions: sessionmaker[Session]) -> TokenStore:
    key = settings.token_encryption_key
    return TokenStore(sessions, TokenCipher(key.get_secret_value() if key else None))


def export_connection(
    settings: Settings,
    sessions: sessionmaker[Session],
    name: str,
    passphrase: str,
    out: Path,
    clock: Clock = SYSTEM_CLOCK,
) -> Path:
    """Write the encrypted export to `out` and disable the connection here (both or neither)."""
    store = _store(settings, sessions)
    redis_client: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url)
    rescue = RescueCopies(redis_client, store.cipher, settings.redis_key_prefix)
    try:
        with sessions() as session:
            connection = get_connection_by_name(session, name)
            session.refresh(connection, with_for_update=True)
            if connection.status == ConnectionStatus.DISABLED:
                raise ConfigurationError(
                    f"connection {name!r} is disabled ({connection.status_reason or 'no reason given'}); "
                    "a disabled connection's tokens may be in use elsewhere, so it is not exported"
                )
            # A pair whose commit failed waits in Redis: the export must carry it, not the dead one it replaced.
            stored = store.load_for_update(session, connection.id)
            pair, settled = rescue.settle(session, store, connection.id, stored)
            token = session.get_one(ConnectionToken, connection.id, populate_existing=True)
            payload = _payload(session, connection, token, pair, clock)
            _write(out, seal(payload, passphrase))
            connection.status = ConnectionStatus.DISABLED
            exported_at = to_datetime(clock.now())
            connection.status_reason = f"exported to another deployment at {exported_at:%Y-%m-%d %H:%M:%S} UTC"
            try:
                session.commit()
            except BaseException:
                out.unlink(missing_ok=True)  # the connection stays active here: no second copy may exist
                raise
        if settled is not None:
            rescue.delete(connection.id, settled)
    finally:
        redis_client.close()
    return out


def _payload(
    session: Session, connection: Connection, token: ConnectionToken, pair: TokenPair, clock: Clock
) -> dict[str, Any]:
    divisions = session.scalars(select(Division).where(Division.connection_id == connection.id)).all()
    cursors = session.scalars(select(SyncCursor).where(SyncCursor.connection_id == connection.id)).all()
    return {
        "export_id": secrets.token_hex(16),
        "exported_at": to_datetime(clock.now()).isoformat(),
        "connection": {
            "name": connection.name,
            "region": connection.region,
            "status": connection.status.value,
            "status_reason": connection.status_reason,
            "sync_interval_minutes": connection.sync_interval_minutes,
            "current_division": connection.current_division,
            "divisions_checked_at": _iso(connection.divisions_checked_at),
            "divisions_chosen": connection.divisions_chosen,
            "last_sync_at": _iso(connection.last_sync_at),
        },
        "tokens": {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "received_at": pair.received_at,
            "expires_in": pair.expires_in,
            "refresh_token_issued_at": _iso(token.refresh_token_issued_at),
            "last_refresh_at": _iso(token.last_refresh_at),
        },
        "divisions": [
            {
                "code": d.code,
                "description": d.description,
                "status": d.status,
                "is_current": d.is_current,
                "sync_enabled": d.sync_enabled,
                "available": d.available,
                "unavailable_reason": d.unavailable_reason,
                "last_synced_at": _iso(d.last_synced_at),
            }
            for d in divisions
        ],
        "cursors": [{"division": c.division, "entity": c.entity, "timestamp": c.timestamp} for c in cursors],
    }


def _write(out: Path, blob: bytes) -> None:
    """Owner-only file, written under a temporary name and renamed, so a crash never leaves half a file."""
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def import_connection(
    settings: Settings,
    sessions: sessionmaker[Session],
    blob: bytes,
    passphrase: str,
    name: str | None = None,
    *,
    reset_cursors: bool = False,
    warn: Callable[[str], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Connection:
    """Create the exported connection here, active, with its tokens, divisions and cursors.

    The cursors say what the exporting side's database already holds; when this database does not hold those
    rows (a fresh deployment rather than a moved one), `reset_cursors` makes the first sync fetch everything.
    `warn` receives what the user should know but does not stop the import (an old export).
    """
    data = unseal(blob, passphrase)
    source, tokens = data["connection"], data["tokens"]
    store = _store(settings, sessions)
    pair = TokenPair(tokens["access_token"], tokens["refresh_token"], tokens["received_at"], tokens["expires_in"])
    for message in _age_warnings(data, to_datetime(clock.now())):
        if warn is not None:
            warn(message)
    import_id = data.get("export_id")
    with sessions.begin() as session:
        _refuse_duplicate(session, store.cipher, pair.refresh_token, import_id)
        connection = add_connection(
            session,
            store,
            validate_name(name or source["name"]),
            source["region"],
            pair,
            interval=source["sync_interval_minutes"],
        )
        connection.current_division = source["current_division"]
        connection.divisions_checked_at = _parse(source["divisions_checked_at"])
        connection.divisions_chosen = bool(source["divisions_chosen"])
        connection.last_sync_at = _parse(source["last_sync_at"])
        connection.import_id = import_id
        session.flush()
        token = session.get_one(ConnectionToken, connection.id)
        token.refresh_token_issued_at = _parse(tokens["refresh_token_issued_at"]) or token.refresh_token_issued_at
        token.last_refresh_at = _parse(tokens["last_refresh_at"])
        for item in data["divisions"]:
            session.add(
                Division(connection_id=connection.id, **{**item, "last_synced_at": _parse(item["last_synced_at"])})
            )
        for cursor in [] if reset_cursors else data["cursors"]:
            session.add(SyncCursor(connection_id=connection.id, **cursor))
        session.flush()
        session.expunge(connection)
    return connection


def _refuse_duplicate(session: Session, cipher: TokenCipher, refresh_token: str, import_id: str | None) -> None:
    """Two connections sharing one single-use refresh token break each other at the first refresh."""
    if import_id is not None:
        earlier = session.scalar(select(Connection.name).where(Connection.import_id == import_id))
        if earlier is not None:
            raise ConfigurationError(f"this export file was already imported here as connection {earlier!r}")
    hashes = cipher.keyed_hashes(refresh_token, REFRESH_TOKEN_PURPOSE)
    candidates = session.execute(
        select(Connection.name, ConnectionToken)
        .join(ConnectionToken, ConnectionToken.connection_id == Connection.id)
        .where(or_(ConnectionToken.refresh_token_hash.in_(hashes), ConnectionToken.refresh_token_hash.is_(None)))
        # An exported (disabled) connection keeps its last pair but never uses it again: importing it back is fine.
        .where(Connection.status != ConnectionStatus.DISABLED)
    ).all()
    for name, row in candidates:
        if row.refresh_token_hash is None:  # stored before hashes existed (`exact-sync keys rotate` adds them)
            try:
                same = cipher.decrypt(row.refresh_token, bound_to=bound_to(row.connection_id, "refresh_token"))
            except ConfigurationError:
                continue
            if same != refresh_token:
                continue
        raise ConfigurationError(
            f"the export's refresh token is already stored here, by connection {name!r}; two connections sharing "
            "one single-use refresh token break each other at the first refresh, so nothing was imported"
        )


def _age_warnings(data: dict[str, Any], now: datetime) -> list[str]:
    exported = _parse(data.get("exported_at"))
    issued = _parse(data["tokens"].get("refresh_token_issued_at"))
    warnings = []
    if exported is not None and now - exported > OLD_EXPORT:
        warnings.append(
            f"this export was made {(now - exported).days} day(s) ago ({exported:%Y-%m-%d %H:%M} UTC): make sure the "
            "exporting deployment has not been connected again since, and expect the first sync to catch up"
        )
    if issued is not None and now - issued > REFRESH_TOKEN_LIFETIME - OLD_EXPORT:
        warnings.append(
            f"its refresh token was issued {issued:%Y-%m-%d %H:%M} UTC and Exact lets it expire 30 days after "
            "issue: if the first sync reports reauth_required, run `exact-sync connect NAME` again"
        )
    return warnings
