"""Rescue copies of rotated token pairs, kept in Redis between Exact's answer and our commit.

Once Exact has answered a refresh, the old refresh token is dead and the new pair exists only in memory until
the database commit. The pair is sealed (encrypted) into a Redis key first; if the commit never happens, the next
refresh finds the copy and adopts it instead of spending the dead token. Each copy names (by hash) the refresh
token it replaces, so a copy is only ever adopted over exactly that stored token.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis
import structlog
from redis.exceptions import RedisError

from syncs.crypto import TokenCipher
from syncs.errors import ConfigurationError, LockUnavailableError
from syncs.token_pair import TokenPair

log = structlog.get_logger(__name__)

RESCUE_TTL_SECONDS = 30 * 86400  # as long as a refresh token lives


def token_hash(token: str) -> str:
    """Identifies a refresh token without holding it (what a rescue copy says it replaces)."""
    return hashlib.sha256(token.encode()).hexdigest()


class RescueCopies:
    def __init__(self, redis_client: redis.Redis[Any], cipher: TokenCipher, key_prefix: str) -> None:
        self._redis = redis_client
        self._cipher = cipher
        self._prefix = key_prefix

    def key(self, connection_id: int) -> str:
        return f"{self._prefix}:token-rescue:{connection_id}"

    def seal(self, pair: TokenPair, replaces: str) -> bytes:
        """`pair` encrypted for the rescue key; `replaces` is the refresh token it rotated out."""
        payload = {
            "access": pair.access_token,
            "refresh": pair.refresh_token,
            "received_at": pair.received_at,
            "expires_in": pair.expires_in,
            "replaces": token_hash(replaces),
        }
        return self._cipher.encrypt(json.dumps(payload))

    def unseal(self, blob: bytes) -> tuple[TokenPair, str]:
        """The pair in a sealed copy and the hash of the refresh token it replaces; ValueError when unreadable."""
        try:
            payload = json.loads(self._cipher.decrypt(blob))
            pair = TokenPair(
                access_token=payload["access"],
                refresh_token=str(payload["refresh"]),
                received_at=payload["received_at"],
                expires_in=payload["expires_in"],
            )
            return pair, str(payload["replaces"])
        except (ConfigurationError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable rescue copy ({type(exc).__name__})") from None

    def write(self, connection_id: int, new: TokenPair, replaces: str) -> bool:
        """Best effort: a failure is logged and the caller commits anyway."""
        try:
            self._redis.set(self.key(connection_id), self.seal(new, replaces), ex=RESCUE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("token.rescue_write_failed", connection_id=connection_id, error=str(exc))
            return False
        return True

    def read(self, connection_id: int) -> tuple[TokenPair, str] | None:
        """The waiting copy, if any; an unreadable one is deleted. Redis down -> LockUnavailableError."""
        try:
            blob = self._redis.get(self.key(connection_id))
        except (RedisError, OSError) as exc:
            # Refreshing now could spend a refresh token already rotated out: wait for Redis instead.
            raise LockUnavailableError(f"cannot check for a rescued token pair: Redis unavailable ({exc})") from None
        if blob is None:
            return None
        try:
            return self.unseal(blob.encode() if isinstance(blob, str) else bytes(blob))
        except ValueError as exc:
            log.warning("token.rescue_unreadable", connection_id=connection_id, error=str(exc))
            self.delete(connection_id)
            return None

    def delete(self, connection_id: int) -> None:
        try:
            self._redis.delete(self.key(connection_id))
        except (RedisError, OSError) as exc:  # a leftover copy is stale once the pair is committed
            log.warning("token.rescue_delete_failed", connection_id=connection_id, error=str(exc))
