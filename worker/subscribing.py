"""Exact webhook subscriptions of a connection, division by division, with our copy (`webhook_subscriptions`)
kept equal to what Exact reports: the work behind `exact-sync webhooks ...` and the automatic subscription."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import redis

from models import Connection
from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.db import session_factory
from syncs.core.errors import ConfigurationError
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient, open_client
from syncs.lifecycle.connections import get_connection_by_name
from syncs.lifecycle.divisions import divisions_to_sync
from syncs.webhooks import subscriptions
from syncs.webhooks.subscriptions import Subscription
from syncs.webhooks.topics import KNOWN_TOPICS, synced_topics

# Work in one division: (the division's subscriptions now, those this call made or deleted).
DivisionWork = Callable[[ExactClient, int], tuple[list[Subscription], list[Subscription]]]


@contextmanager
def divisions_client(
    settings: Settings, name: str, clock: Clock = SYSTEM_CLOCK
) -> Iterator[tuple[ExactClient, Connection, list[int]]]:
    """An API client for the connection, and its synced divisions (the list is read from Exact first when it was
    never read, as right after `connections add`, or when its daily check is due)."""
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        connection = get_connection_by_name(session, name)
        session.expunge(connection)
    client_redis: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url)
    try:
        with open_client(
            settings, connection.id, connection.region, sessions=sessions, redis=client_redis, clock=clock
        ) as client:
            divisions = divisions_to_sync(sessions, connection.id, client, clock, settings.divisions_check_hours)
            yield client, connection, sorted(divisions)
    finally:
        client_redis.close()


def per_division(
    settings: Settings, name: str, work: DivisionWork, clock: Clock = SYSTEM_CLOCK
) -> list[tuple[int, list[Subscription], list[Subscription]]]:
    """Run `work` in each synced division and store what it reports as the division's subscriptions:
    (division, subscriptions now, those made or deleted) per division."""
    sessions = session_factory(settings.database_url)
    done = []
    with divisions_client(settings, name, clock) as (client, connection, divisions):
        for division in divisions:
            now, changed = work(client, division)
            with sessions.begin() as session:
                subscriptions.remember(session, connection.id, division, now)
            done.append((division, now, changed))
    return done


def chosen_topics(topics: Sequence[str] | None) -> list[str]:
    """`topics` (default: every synced entity's topic), each a known one."""
    chosen = list(dict.fromkeys(topics or synced_topics()))
    unknown = [t for t in chosen if t not in KNOWN_TOPICS]
    if unknown:
        raise ConfigurationError(f"unknown webhook topic(s) {', '.join(unknown)}; known: {', '.join(KNOWN_TOPICS)}")
    return chosen


def subscribe_connection(
    settings: Settings, name: str, topics: Sequence[str] | None, callback_url: str, clock: Clock = SYSTEM_CLOCK
) -> list[tuple[int, list[Subscription], list[Subscription]]]:
    """Subscribe every synced division of `name` to `topics` (default: every synced topic) where missing (safe to
    run again)."""
    chosen = chosen_topics(topics)
    return per_division(
        settings, name, lambda client, division: subscriptions.subscribe(client, division, chosen, callback_url), clock
    )
