"""Rescue copies of rotated token pairs, kept in Redis between Exact's answer and our commit.

Once Exact has answered a refresh, the old refresh token is dead and the new pair exists only in memory until
the database commit. The pair is sealed (encrypted) into a Redis key first; if the commit never happens, the next
refresh finds the copy and adopts it instead of spending the dead token. Each copy names (by hash) the refresh
token it replaces, so a copy is only ever adopted over exactly that stored token.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import structlog
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from syncs.core.crypto import TokenCipher, bound_to
from syncs.core.errors import ConfigurationError, LockUnavailableError
from syncs.tokens.pair import TokenPair

if TYPE_CHECKING:
    from syncs.tokens.store import TokenStore

log = structlog.get_logger(__name__)

RESCUE_TTL_SECONDS = 30 * 86400  # as long as a refresh token lives
# Delete the key only if it still holds the copy we read or wrote (another worker may have written a newer one).
_DELETE_IF_SAME = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def token_hash(token: str) -> str:
    """Identifies a refresh token without holding it (what a rescue copy says it replaces)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class RescueCopy:
    pair: TokenPair
    replaces: str  # hash of the refresh token this pair rotated out
    blob: bytes = field(repr=False)  # as stored, for a compare-and-delete


class RescueCopies:
    def __init__(self, redis_client: redis.Redis[Any], cipher: TokenCipher, key_prefix: str) -> None:
        self._redis = redis_client
        self._cipher = cipher
        self._prefix = key_prefix
        self._delete_if_same = redis_client.register_script(_DELETE_IF_SAME)

    def key(self, connection_id: int) -> str:
        return f"{self._prefix}:token-rescue:{connection_id}"

    def seal(self, connection_id: int, pair: TokenPair, replaces: str) -> bytes:
        """`pair` encrypted for the rescue key; `replaces` is the refresh token it rotated out."""
        payload = {
            "access": pair.access_token,
            "refresh": pair.refresh_token,
            "received_at": pair.received_at,
            "expires_in": pair.expires_in,
            "replaces": token_hash(replaces),
        }
        return self._cipher.encrypt(json.dumps(payload), bound_to=bound_to(connection_id, "rescue"))

    def unseal(self, connection_id: int, blob: bytes) -> tuple[TokenPair, str]:
        """The pair in a sealed copy and the hash of the refresh token it replaces; ValueError when unreadable."""
        try:
            payload = json.loads(self._cipher.decrypt(blob, bound_to=bound_to(connection_id, "rescue")))
            pair = TokenPair(
                access_token=payload["access"],
                refresh_token=str(payload["refresh"]),
                received_at=payload["received_at"],
                expires_in=payload["expires_in"],
            )
            return pair, str(payload["replaces"])
        except (ConfigurationError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable rescue copy ({type(exc).__name__})") from None

    def write(self, connection_id: int, new: TokenPair, replaces: str) -> bytes | None:
        """Best effort: returns the stored blob, or None after logging a failure (the caller commits anyway)."""
        blob = self.seal(connection_id, new, replaces)
        try:
            self._redis.set(self.key(connection_id), blob, ex=RESCUE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("token.rescue_write_failed", connection_id=connection_id, error=str(exc))
            return None
        return blob

    def read(self, connection_id: int) -> RescueCopy | None:
        """The waiting copy, if any; an unreadable one is deleted. Redis down -> LockUnavailableError."""
        try:
            blob = self._redis.get(self.key(connection_id))
        except (RedisError, OSError) as exc:
            # Refreshing now could spend a refresh token already rotated out: wait for Redis instead.
            raise LockUnavailableError(f"cannot check for a rescued token pair: Redis unavailable ({exc})") from None
        if blob is None:
            return None
        raw = blob.encode() if isinstance(blob, str) else bytes(blob)
        try:
            pair, replaces = self.unseal(connection_id, raw)
        except ValueError as exc:
            log.warning("token.rescue_unreadable", connection_id=connection_id, error=str(exc))
            self.delete(connection_id, raw)
            return None
        return RescueCopy(pair, replaces, raw)

    def delete(self, connection_id: int, blob: bytes) -> None:
        """Remove the copy if it is still `blob`; best effort (a leftover copy is stale once its pair is committed)."""
        try:
            self._delete_if_same(keys=[self.key(connection_id)], args=[blob])
        except (RedisError, OSError) as exc:
            log.warning("token.rescue_delete_failed", connection_id=connection_id, error=str(exc))

    def settle(
        self, session: Session, store: TokenStore, connection_id: int, stored: TokenPair
    ) -> tuple[TokenPair, bytes | None]:
        """(the pair to use, the copy to `delete` once the caller has committed), in the caller's transaction with
        the token row locked: a copy that replaces `stored` is saved over it; any other copy is stale."""
        copy = self.read(connection_id)
        if copy is None:
            return stored, None
        if token_hash(stored.refresh_token) != copy.replaces:
            log.info("token.rescue_stale", connection_id=connection_id)
            return stored, copy.blob
        store.save(session, connection_id, copy.pair, refreshed=True)
        log.warning("token.rescue_adopted", connection_id=connection_id)
        return copy.pair, copy.blob
