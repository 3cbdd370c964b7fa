"""What an operator looks at, read from the shared state: Postgres for runs and freshness, the broker for the queue.

One set of reads behind `/metrics`, the dashboard and `doctor`, so the three never disagree. Totals come from
tables a trigger keeps (models.ops), so a scrape costs the same after a year of runs as after a day. Entities come from
the registry (`syncs.entities.registry`) and rows from the tables, so a new entity or connection needs no code here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amqp.exceptions import ChannelError
from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Connection, SyncEntityTotal, SyncRun, SyncRunTotal
from syncs.entities.registry import DEFAULT_ENTITIES, ENTITIES

REFRESH_TOKEN_LIFETIME_SECONDS = 30 * 86400  # Exact drops a refresh token 30 days after it was issued
ROW_ACTIONS = ("inserted", "updated", "deleted")


@dataclass(frozen=True)
class RunCount:
    connection: str
    status: str
    runs: int
    api_calls: int


@dataclass(frozen=True)
class RowCount:
    connection: str
    entity: str  # a stream: an entity's name, or "deleted" (sync/Deleted marks rows of every entity)
    action: str  # inserted, updated, deleted
    rows: int


def run_counts(session: Session) -> list[RunCount]:
    """Finished runs (and their API calls) per connection and outcome, from the trigger-kept totals."""
    rows = session.execute(
        select(Connection.name, SyncRunTotal.status, SyncRunTotal.runs, SyncRunTotal.api_calls)
        .join(SyncRunTotal, SyncRunTotal.connection_id == Connection.id)
        .order_by(Connection.name, SyncRunTotal.status)
    ).all()
    return [RunCount(name, status, int(runs), int(calls)) for name, status, runs, calls in rows]


def running_runs(session: Session) -> dict[str, int]:
    """Runs in progress per connection (a partial index keeps this cheap)."""
    rows = session.execute(
        select(Connection.name, func.count())
        .join(SyncRun, SyncRun.connection_id == Connection.id)
        .where(SyncRun.status == "running")
        .group_by(Connection.name)
    ).all()
    return {name: int(count) for name, count in rows}


def row_counts(session: Session) -> list[RowCount]:
    """Rows inserted, updated and deleted per connection and stream by succeeded runs."""
    rows = session.execute(
        select(Connection.name, SyncEntityTotal)
        .join(SyncEntityTotal, SyncEntityTotal.connection_id == Connection.id)
        .order_by(Connection.name, SyncEntityTotal.entity)
    ).all()
    return [
        RowCount(name, total.entity, action, int(getattr(total, action)))
        for name, total in rows
        for action in ROW_ACTIONS
    ]


def entity_last_success(session: Session) -> dict[tuple[int, str], datetime]:
    """(connection id, entity) -> when the newest succeeded run that synced that entity finished."""
    rows = session.execute(
        select(SyncEntityTotal.connection_id, SyncEntityTotal.entity, SyncEntityTotal.last_success_at).where(
            SyncEntityTotal.last_success_at.is_not(None)
        )
    ).all()
    return {(int(connection_id), str(entity)): finished for connection_id, entity, finished in rows if finished}


def watched_entities(
    connection_id: int, last_success: dict[tuple[int, str], datetime], enabled: Collection[str]
) -> list[str]:
    """The entities whose freshness matters for a connection, of those it has on (`enabled`): what a default run
    syncs, and any other entity of the registry it has synced successfully (a catalog entity nobody asked for, or
    one switched off, is not stale)."""
    synced = [entity for (owner, entity) in last_success if owner == connection_id and entity in ENTITIES]
    return [entity for entity in dict.fromkeys([*DEFAULT_ENTITIES, *sorted(synced)]) if entity in enabled]


def recent_runs(session: Session, limit: int = 20) -> list[tuple[str, SyncRun]]:
    rows = session.execute(
        select(Connection.name, SyncRun)
        .join(SyncRun, SyncRun.connection_id == Connection.id)
        .order_by(SyncRun.id.desc())
        .limit(limit)
    ).all()
    return [(name, run) for name, run in rows]


def queue_length(app: Celery, queue: str) -> int:
    """Messages waiting in the queue, asked of the broker (works for Redis and AMQP brokers alike)."""
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1)
        channel: Any = connection.channel()
        # On Redis, kombu's passive check asks EXISTS without CELERY_KEY_PREFIX (kombu 5.7 does not prefix that
        # command), so a prefixed queue is never found; a declaration there writes nothing to Redis.
        passive = connection.transport.driver_type != "redis"
        try:
            return int(channel.queue_declare(queue=queue, passive=passive).message_count)
        except ChannelError as exc:  # NOT_FOUND: nobody declared it yet (Redis: no list until a message arrives)
            if "NOT_FOUND" in str(exc):
                return 0
            raise
        finally:
            channel.close()
