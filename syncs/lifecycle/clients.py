"""An ExactClient for a connection by name, with its division: what the proxy and the actions open per call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from sqlalchemy.orm import Session, sessionmaker

from models.internal import ConnectionStatus
from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.db import session_factory
from syncs.core.errors import ConfigurationError, ConnectionInactiveError
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient, open_client
from syncs.exact.proxy import ProxyResult, proxy_call
from syncs.lifecycle.connections import get_connection_by_name
from syncs.limits.budgets import synced_divisions


@dataclass(frozen=True)
class Target:
    connection_id: int
    connection: str
    division: int | None  # None: the login's current division, asked from current/Me when needed


def resolve_target(sessions: sessionmaker[Session], name: str, division: int | None) -> Target:
    """The connection (it must be active) and the division: the one asked for, else the login's current one when
    the connection syncs it, else the only division it syncs (never one the user switched off)."""
    with sessions() as session:
        connection = get_connection_by_name(session, name)
        if connection.status != ConnectionStatus.ACTIVE:
            reason = f": {connection.status_reason}" if connection.status_reason else ""
            raise ConnectionInactiveError(f"connection {name!r} is {connection.status.value}{reason}")
        if division is not None:
            return Target(connection.id, connection.name, division)
        chosen = connection.current_division
        synced = synced_divisions(session, connection)
        if chosen is not None and synced and chosen not in synced:
            if len(synced) > 1:
                raise ConfigurationError(
                    f"connection {name!r} does not sync its login's current division {chosen}: pass --division "
                    f"(it syncs {', '.join(map(str, synced))})"
                )
            chosen = synced[0]
        return Target(connection.id, connection.name, chosen)


def division_of(target: Target, client: ExactClient) -> int:
    if target.division is not None:
        return target.division
    current = client.current_me().get("CurrentDivision")
    if not isinstance(current, int):
        raise ConfigurationError(f"connection {target.connection!r}: current/Me names no division; pass --division")
    return current


@contextmanager
def connection_client(
    settings: Settings,
    sessions: sessionmaker[Session],
    target: Target,
    *,
    clock: Clock = SYSTEM_CLOCK,
    transport: httpx.BaseTransport | None = None,
) -> Iterator[ExactClient]:
    """The connection's client: token refresher, rate and error budgets, in-flight slots, as a sync uses."""
    with sessions() as session:
        region = get_connection_by_name(session, target.connection).region
    redis_client = redis.Redis.from_url(settings.redis_url)
    try:
        with open_client(
            settings,
            target.connection_id,
            region,
            sessions=sessions,
            redis=redis_client,
            clock=clock,
            transport=transport,
        ) as client:
            yield client
    finally:
        redis_client.close()


def proxy(
    settings: Settings,
    connection: str,
    method: str,
    path: str,
    *,
    division: int | None = None,
    data: Any = None,
    all_pages: bool = False,
    params: dict[str, str] | None = None,
) -> ProxyResult:
    """The proxy from Python: `proxy(settings, "acme", "GET", "crm/Accounts", all_pages=True).body`."""
    sessions = session_factory(settings.database_url)
    target = resolve_target(sessions, connection, division)
    with connection_client(settings, sessions, target) as client:
        on = None if path.lstrip("/").startswith("current/") else division_of(target, client)
        return proxy_call(client, method, path, division=on, data=data, all_pages=all_pages, params=params)
