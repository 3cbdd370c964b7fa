"""Keep-alive: refresh idle connections' tokens before Exact's 30-day refresh-token expiry.

A connection that syncs refreshes its tokens every ten minutes of use. One that sits idle (a long interval,
every division switched off, a stopped worker) would lose its refresh token after 30 days and need new consent.
The beat entry `exact.keep_alive` therefore refreshes every active connection whose refresh token is older than
TOKEN_KEEPALIVE_DAYS, through the shared TokenRefresher (Redis lock, row lock, window rules, backoff).

Never early: when the stored access token is not yet inside its refresh window (Exact answers an early refresh
with 401 and counts it against the key), the keep-alive waits for the window if it opens within
TOKEN_KEEPALIVE_MAX_WAIT_SECONDS, else leaves the connection to the next beat run.
Disabled connections (e.g. exported to another deployment) and reauth_required ones are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import redis
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, ConnectionToken
from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.crypto import TokenCipher
from syncs.core.errors import ConfigurationError, ExactSyncError
from syncs.core.settings import Settings
from syncs.exact.exact_time import exact_time_for
from syncs.exact.oauth import OAuthClient
from syncs.tokens.store import TokenRefresher, TokenStore

log = structlog.get_logger(__name__)


@dataclass
class KeepAliveReport:
    refreshed: list[str] = field(default_factory=list)
    not_in_window: list[str] = field(default_factory=list)  # left for the next beat run
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"refreshed": self.refreshed, "not_in_window": self.not_in_window, "failed": self.failed}


def idle_connections(session: Session, settings: Settings, now: float) -> list[tuple[int, str, str]]:
    """(id, name, region) of active connections whose refresh token is older than the keep-alive age."""
    threshold = to_datetime(now) - timedelta(days=settings.token_keepalive_days)
    rows = session.execute(
        select(Connection.id, Connection.name, Connection.region)
        .join(ConnectionToken, ConnectionToken.connection_id == Connection.id)
        .where(Connection.status == ConnectionStatus.ACTIVE, ConnectionToken.refresh_token_issued_at <= threshold)
        .order_by(Connection.name)
    )
    return [(row.id, row.name, row.region) for row in rows]


def keep_alive(
    settings: Settings,
    sessions: sessionmaker[Session],
    redis_client: redis.Redis[Any],
    clock: Clock = SYSTEM_CLOCK,
    transport: httpx.BaseTransport | None = None,
) -> KeepAliveReport:
    if not settings.exact_client_id or settings.exact_client_secret is None:
        raise ConfigurationError("EXACT_CLIENT_ID and EXACT_CLIENT_SECRET must be set")
    key = settings.token_encryption_key
    store = TokenStore(sessions, TokenCipher(key.get_secret_value() if key else None))
    report = KeepAliveReport()
    with sessions() as session:
        due = idle_connections(session, settings, clock.now())
    for connection_id, name, region in due:
        oauth = OAuthClient(
            settings.base_url_for(region),
            settings.exact_client_id,
            settings.exact_client_secret.get_secret_value(),
            clock=clock,
            timeout=settings.http_timeout_seconds,
            transport=transport,
            exact_time=exact_time_for(settings, redis_client, clock, region),
        )
        refresher = TokenRefresher(store, oauth, redis_client, settings, sessions, clock)
        try:
            pair = store.load(connection_id)
            if not refresher.needs_refresh(pair):
                wait = refresher.seconds_until_refreshable(pair)
                if wait > settings.token_keepalive_max_wait_seconds:
                    log.info("keepalive.not_in_window", connection=name, window_opens_in=round(wait))
                    report.not_in_window.append(name)
                    continue
                clock.sleep(wait)
            refresher.valid_access_token(connection_id)  # refreshes only inside the window, under the lock
        except ExactSyncError as exc:
            log.warning("keepalive.failed", connection=name, error=str(exc))
            report.failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        finally:
            oauth.close()
        log.info("keepalive.refreshed", connection=name)
        report.refreshed.append(name)
    return report
