"""Key rotation: re-encrypt every stored secret under the first key of TOKEN_ENCRYPTION_KEY.

Secrets live in connection_tokens (access and refresh token of every connection, whatever its state: active,
paused, disabled, reauth_required) and in Redis rescue copies. Each token row is rewritten under its row lock
(FOR UPDATE, as a refresh takes it), so a concurrent refresh cannot be overwritten with an older pair; a rescue
copy is replaced only if it still holds what was read (compare-and-set). Secrets already bound and under the first
key are left alone, so running it again (or from `exact-sync migrate`) costs only reads. Afterwards no stored
secret needs an older key: it can be removed from TOKEN_ENCRYPTION_KEY.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionToken
from syncs.core.crypto import LEGACY, TokenCipher, bound_to
from syncs.core.errors import ConfigurationError, LockUnavailableError
from syncs.tokens.store import REFRESH_TOKEN_PURPOSE

log = structlog.get_logger(__name__)

TOKEN_FIELDS = ("access_token", "refresh_token")
# Replace a rescue copy only if it still holds the blob we re-encrypted; keep its TTL.
_SWAP_IF_SAME = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end return 0"
)


@dataclass
class RotationReport:
    rewritten_connections: Counter[str] = field(default_factory=Counter)  # per connection status
    current_connections: int = 0  # already bound, under the first key, hashed
    secrets_rewritten: int = 0
    from_older_key: int = 0
    from_unbound_format: int = 0
    rescue_copies_rewritten: int = 0
    rescue_copies_current: int = 0
    unreadable: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        states = ", ".join(f"{count} {status}" for status, count in sorted(self.rewritten_connections.items()))
        total = sum(self.rewritten_connections.values())
        return [
            f"token pairs re-encrypted under the first key: {total} connection(s){f' ({states})' if states else ''}, "
            f"{self.secrets_rewritten} secret(s): {self.from_older_key} under an older key, "
            f"{self.from_unbound_format} in the unbound pre-binding format; {self.current_connections} already current",
            f"rescue copies in Redis re-encrypted: {self.rescue_copies_rewritten}, already current: "
            f"{self.rescue_copies_current}",
            "unreadable (left as they were): " + ("; ".join(self.unreadable) if self.unreadable else "none"),
        ]


def rotate_keys(
    sessions: sessionmaker[Session], redis_client: redis.Redis[Any], cipher: TokenCipher, prefix: str
) -> RotationReport:
    report = RotationReport()
    with sessions() as session:
        ids = session.scalars(select(ConnectionToken.connection_id).order_by(ConnectionToken.connection_id)).all()
    for connection_id in ids:
        with sessions.begin() as session:
            _rotate_row(session, cipher, connection_id, report)
    _rotate_rescue_copies(redis_client, cipher, prefix, report)
    log.info("keys.rotated", **{k: v for k, v in vars(report).items() if k != "rewritten_connections"})
    return report


def _rotate_row(session: Session, cipher: TokenCipher, connection_id: int, report: RotationReport) -> None:
    statement = select(ConnectionToken).where(ConnectionToken.connection_id == connection_id).with_for_update()
    row = session.scalar(statement)
    connection = session.get(Connection, connection_id)
    if row is None or connection is None:
        return
    new: dict[str, bytes] = {}
    refresh_plain = ""
    try:
        for name in TOKEN_FIELDS:
            blob: bytes | None = getattr(row, name)
            if blob is None:
                continue
            opened = cipher.open(blob, bound_to=bound_to(connection_id, name))
            if name == "refresh_token":
                refresh_plain = opened.plaintext
            if not opened.current:
                new[name] = cipher.encrypt(opened.plaintext, bound_to=bound_to(connection_id, name))
                report.from_unbound_format += opened.key_index == LEGACY
                report.from_older_key += opened.key_index > 0
    except ConfigurationError:
        report.unreadable.append(f"tokens of connection {connection.name!r}")
        return
    wanted_hash = cipher.keyed_hash(refresh_plain, REFRESH_TOKEN_PURPOSE)
    if not new and row.refresh_token_hash == wanted_hash:
        report.current_connections += 1
        return
    for name, blob in new.items():
        setattr(row, name, blob)
    row.refresh_token_hash = wanted_hash
    report.secrets_rewritten += len(new)
    report.rewritten_connections[connection.status.value] += 1


def _rotate_rescue_copies(
    redis_client: redis.Redis[Any], cipher: TokenCipher, prefix: str, report: RotationReport
) -> None:
    swap = redis_client.register_script(_SWAP_IF_SAME)
    try:
        for key in redis_client.scan_iter(match=f"{prefix}:token-rescue:*"):
            name = key.decode() if isinstance(key, bytes) else str(key)
            connection_id = int(name.rsplit(":", 1)[1])
            blob = redis_client.get(key)
            if blob is None:
                continue
            try:
                opened = cipher.open(blob, bound_to=bound_to(connection_id, "rescue"))
            except ConfigurationError:
                report.unreadable.append(f"rescue copy {name}")
                continue
            if opened.current:
                report.rescue_copies_current += 1
                continue
            fresh = cipher.encrypt(opened.plaintext, bound_to=bound_to(connection_id, "rescue"))
            if swap(keys=[key], args=[blob, fresh]):
                report.rescue_copies_rewritten += 1
    except (RedisError, OSError) as exc:
        raise LockUnavailableError(f"cannot re-encrypt the rescue copies: Redis unavailable ({exc})") from None
