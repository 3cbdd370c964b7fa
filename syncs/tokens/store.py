"""Token storage and the one refresh procedure every worker, thread and process shares.

Exact's refresh tokens are single use and an early refresh is refused (and counted against the key), so a
refresh happens only inside the refresh window, under a Redis lock per connection, after re-reading the stored
pair, with the connection_tokens row locked (FOR UPDATE) in the transaction that commits the new pair before
anyone uses it. A 401 on an API call refreshes only when the token is inside its window or Exact says it expired;
otherwise it fails without calling the token endpoint. Windows are kept in Exact's time (syncs/exact/exact_time.py):
a pair's `received_at` is Exact's, and "now" is our clock plus a lower bound of Exact's offset.

Between Exact's answer and our commit the rotated pair exists nowhere else, and the old refresh token is dead:
so the new pair is first written (encrypted) to a Redis rescue key, which the next refresh adopts if the commit
did not happen.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

import redis
import structlog
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.lock import Lock
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, ConnectionToken
from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.crypto import TokenCipher, bound_to
from syncs.core.errors import (
    ConfigurationError,
    ConnectionInactiveError,
    ExactRequestError,
    LockUnavailableError,
    ReauthRequiredError,
    TokenRefreshError,
)
from syncs.core.settings import Settings
from syncs.exact.exact_time import ExactTime
from syncs.tokens.failures import next_refresh_attempt, record_failure
from syncs.tokens.pair import TokenPair
from syncs.tokens.rescue import RescueCopies

log = structlog.get_logger(__name__)

REFRESH_TOKEN_PURPOSE = "refresh-token"  # keyed hash in connection_tokens.refresh_token_hash (duplicate imports)


class TokenEndpoint(Protocol):
    exact_time: ExactTime  # Exact's time at this endpoint's host, what refresh windows are kept in

    def refresh(self, refresh_token: str) -> TokenPair: ...


class TokenStore:
    """Encrypted pairs in connection_tokens; `save` joins the caller's transaction (the caller commits)."""

    def __init__(self, sessions: sessionmaker[Session], cipher: TokenCipher) -> None:
        self._sessions = sessions
        self._cipher = cipher

    @property
    def cipher(self) -> TokenCipher:
        return self._cipher

    def load(self, connection_id: int) -> TokenPair:
        with self._sessions() as session:
            row = session.get(ConnectionToken, connection_id)
            return self._pair(row, connection_id)

    def load_for_update(self, session: Session, connection_id: int) -> TokenPair:
        statement = select(ConnectionToken).where(ConnectionToken.connection_id == connection_id)
        row = session.execute(statement.with_for_update().execution_options(populate_existing=True))
        return self._pair(row.scalar_one_or_none(), connection_id)

    def save(self, session: Session, connection_id: int, pair: TokenPair, *, refreshed: bool = False) -> None:
        received = to_datetime(pair.received_at) if pair.received_at is not None else None
        expires = (
            to_datetime(pair.received_at + pair.expires_in)
            if pair.received_at is not None and pair.expires_in is not None
            else None
        )
        refresh_place = bound_to(connection_id, "refresh_token")
        values = {
            "access_token": (
                self._cipher.encrypt(pair.access_token, bound_to=bound_to(connection_id, "access_token"))
                if pair.access_token
                else None
            ),
            "refresh_token": self._cipher.encrypt(pair.refresh_token, bound_to=refresh_place),
            "refresh_token_hash": self._cipher.keyed_hash(pair.refresh_token, REFRESH_TOKEN_PURPOSE),
            "received_at": received,
            "expires_at": expires,
            "last_refresh_error": None,
            "last_refresh_error_at": None,
            "refresh_failures": 0,
        }
        if received is not None:
            values["refresh_token_issued_at"] = received
        if refreshed:
            values["last_refresh_at"] = received
        statement = insert(ConnectionToken).values(connection_id=connection_id, **values)
        session.execute(statement.on_conflict_do_update(index_elements=["connection_id"], set_=values))

    def _pair(self, row: ConnectionToken | None, connection_id: int) -> TokenPair:
        if row is None:
            raise ConfigurationError(f"connection {connection_id} has no stored tokens; connect it first")
        expires_in = None
        if row.received_at is not None and row.expires_at is not None:
            expires_in = (row.expires_at - row.received_at) / timedelta(seconds=1)
        return TokenPair(
            access_token=(
                self._cipher.decrypt(row.access_token, bound_to=bound_to(connection_id, "access_token"))
                if row.access_token
                else None
            ),
            refresh_token=self._cipher.decrypt(row.refresh_token, bound_to=bound_to(connection_id, "refresh_token")),
            received_at=row.received_at.timestamp() if row.received_at is not None else None,
            expires_in=expires_in,
        )


class TokenRefresher:
    """Hands out access tokens; refreshes at most once per window, whoever asks."""

    def __init__(
        self,
        store: TokenStore,
        endpoint: TokenEndpoint,
        redis_client: redis.Redis[Any],
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._endpoint = endpoint
        self._redis = redis_client
        self._settings = settings
        self._sessions = sessions
        self._clock = clock
        self._rescue = RescueCopies(redis_client, store.cipher, settings.redis_key_prefix)

    def needs_refresh(self, pair: TokenPair) -> bool:
        return pair.access_token is None or self.seconds_until_refreshable(pair) <= 0

    def seconds_until_refreshable(self, pair: TokenPair) -> float:
        """How long until the pair's refresh window opens by Exact's clock (at most; 0 or less: open)."""
        due = self._refreshable_at(pair)
        return 0.0 if due is None else due - self._endpoint.exact_time.now()

    def _refreshable_at(self, pair: TokenPair) -> float | None:
        return pair.refreshable_at(
            self._settings.token_refresh_window_seconds, self._settings.token_refresh_margin_seconds
        )

    def valid_access_token(self, connection_id: int) -> str:
        pair = self._store.load(connection_id)
        if not self.needs_refresh(pair) and pair.access_token:
            return pair.access_token
        return self._refresh(connection_id, used_token=None)

    def current_access_token(self, connection_id: int) -> str | None:
        """The stored access token while it needs no refresh, else None (never refreshes)."""
        pair = self._store.load(connection_id)
        return pair.access_token if pair.access_token and not self.needs_refresh(pair) else None

    def after_unauthorized(self, connection_id: int, used_token: str, *, expired: bool = False) -> str:
        """Exact refused `used_token`: hand out a newer stored token, else refresh once, but only when the token
        is inside its refresh window (by Exact's clock) or Exact said it expired (`expired`, from WWW-Authenticate).

        A young token Exact does not accept is not refreshed: Exact refuses an early refresh and counts it
        against the key. That raises ExactRequestError(401) without calling the token endpoint.
        """
        pair = self._store.load(connection_id)
        if pair.access_token and pair.access_token != used_token:
            return pair.access_token
        if not expired and not self.needs_refresh(pair):
            raise self._not_refreshable(connection_id, pair)
        return self._refresh(connection_id, used_token=used_token, expired=expired)

    def _not_refreshable(self, connection_id: int, pair: TokenPair) -> ExactRequestError:
        due = self._refreshable_at(pair)
        when = f" (refreshable from {to_datetime(due):%Y-%m-%d %H:%M:%S} UTC by Exact's clock)" if due else ""
        with self._sessions() as session:
            connection = session.get(Connection, connection_id)
            name = connection.name if connection is not None else str(connection_id)
        log.error("token.refused_not_refreshable", connection_id=connection_id)
        return ExactRequestError(
            f"Exact refused the access token of connection {name!r} (401), but the token is not yet refreshable"
            f"{when} and Exact did not say it expired; not refreshing early (Exact refuses that and counts it "
            f"against the key). If this persists, run `exact-sync connect {name}` again.",
            401,
        )

    def _refresh(self, connection_id: int, used_token: str | None, *, expired: bool = False) -> str:
        started = self._clock.now()
        name = f"{self._settings.redis_key_prefix}:token-lock:{connection_id}"
        timeout = self._settings.token_lock_timeout_seconds
        lock = self._redis.lock(name, timeout=timeout, blocking=True, blocking_timeout=timeout)
        try:
            acquired = lock.acquire()
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"cannot take the token lock {name!r}: Redis unavailable ({exc})") from None
        if not acquired:
            raise LockUnavailableError(f"token lock {name!r} still held by another worker after {timeout:.0f} s")
        try:
            return self._refresh_locked(connection_id, used_token, started, lock, expired=expired)
        finally:
            try:
                lock.release()
            except LockNotOwnedError:
                log.warning("token.lock_expired_before_release", connection_id=connection_id)
            except (LockError, RedisError, OSError) as exc:
                log.warning("token.lock_release_failed", connection_id=connection_id, error=str(exc))

    def _refresh_locked(
        self, connection_id: int, used_token: str | None, started: float, lock: Lock, *, expired: bool = False
    ) -> str:
        failure: ReauthRequiredError | TokenRefreshError | ExactRequestError | None = None
        new: TokenPair | None = None
        written: bytes | None = None  # the rescue copy of `new`, once written
        try:
            with self._sessions() as session, session.begin():
                stored = self._store.load_for_update(session, connection_id)
                # A pair whose commit failed earlier waits in Redis: adopt it before anything else.
                pair, settled = self._rescue.settle(session, self._store, connection_id, stored)
                if not self._refresh_needed(connection_id, pair, used_token, expired):
                    assert pair.access_token is not None
                    current = pair.access_token  # another worker refreshed (or a rescue was adopted) meanwhile
                else:
                    self._check_not_failed(session, connection_id, started)
                    self._check_lock_held(lock, connection_id)
                    try:
                        new = self._endpoint.refresh(pair.refresh_token)
                    except (ReauthRequiredError, TokenRefreshError, ExactRequestError) as exc:
                        failure = exc  # the stored pair stays as it was
                    else:
                        # The old refresh token is dead now: keep the new pair safe before the commit.
                        written = self._rescue.write(connection_id, new, pair.refresh_token)
                        self._store.save(session, connection_id, new, refreshed=True)
        except SQLAlchemyError:
            if new is not None:  # the next refresh adopts the rescue copy (if it was written)
                log.error("token.commit_failed", connection_id=connection_id, rescued=written is not None)
            raise
        for blob in (settled, written):
            if blob is not None:
                self._rescue.delete(connection_id, blob)
        if failure is not None:
            reauth = isinstance(failure, ReauthRequiredError)
            record_failure(self._sessions, connection_id, str(failure), self._clock.now(), reauth=reauth)
            if reauth:
                log.error("token.reauth_required", connection_id=connection_id, error=str(failure))
            else:
                log.warning("token.refresh_failed", connection_id=connection_id, error=str(failure))
            raise failure
        if new is None:
            return current
        log.info("token.refreshed", connection_id=connection_id, expires_in=new.expires_in)
        if new.access_token is None:
            raise TokenRefreshError("token endpoint returned no access token")
        return new.access_token

    def _refresh_needed(self, connection_id: int, pair: TokenPair, used_token: str | None, expired: bool) -> bool:
        """Under the lock, on the current stored pair: False when it can be handed out as it is."""
        if pair.access_token and (
            (used_token is None and not self.needs_refresh(pair))
            or (used_token is not None and pair.access_token != used_token)
        ):
            return False
        if used_token is not None and not expired and not self.needs_refresh(pair):
            raise self._not_refreshable(connection_id, pair)
        return True

    def _check_lock_held(self, lock: Lock, connection_id: int) -> None:
        """Never call the token endpoint once our lock has lapsed: another worker may be refreshing too."""
        try:
            owned = lock.owned()
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"cannot confirm the token lock: Redis unavailable ({exc})") from None
        if not owned:
            raise LockUnavailableError(f"token lock of connection {connection_id} lapsed before the refresh")

    def _check_not_failed(self, session: Session, connection_id: int, started: float) -> None:
        """Waiters must not repeat a refresh that just failed for someone else: no retry storm at Exact."""
        connection = session.get(Connection, connection_id)
        if connection is not None and connection.status == ConnectionStatus.REAUTH_REQUIRED:
            raise ReauthRequiredError(connection.status_reason or f"connection {connection_id} needs re-consent")
        if connection is not None and connection.status != ConnectionStatus.ACTIVE:
            raise ConnectionInactiveError(f"connection {connection_id} is {connection.status.value}")
        row = session.get(ConnectionToken, connection_id)
        if row is not None and row.last_refresh_error_at and row.last_refresh_error_at.timestamp() >= started:
            raise TokenRefreshError(f"token refresh failed moments ago in another worker: {row.last_refresh_error}")
        retry_at = next_refresh_attempt(row, self._settings)
        if retry_at is not None and self._clock.now() < retry_at:
            raise TokenRefreshError(
                f"token refresh backing off after {row.refresh_failures if row else 0} failure(s) until "
                f"{to_datetime(retry_at):%Y-%m-%d %H:%M:%S} UTC (last error: {row.last_refresh_error if row else ''})"
            )
