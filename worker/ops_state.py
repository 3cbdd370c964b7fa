"""What an operator looks at, read from the shared state: Postgres for runs and freshness, the broker for the queue.

One set of reads behind `/metrics`, the dashboard and `doctor`, so the three never disagree. Entities come from
the registry (`syncs.entities.ENTITIES`) and rows from the tables, so a new entity or connection needs no code here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amqp.exceptions import ChannelError
from celery import Celery
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from models import Connection, SyncRun

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
    """Finished runs (and their API calls) per connection and outcome since the connection was added."""
    rows = session.execute(
        select(Connection.name, SyncRun.status, func.count(), func.coalesce(func.sum(SyncRun.api_calls), 0))
        .join(SyncRun, SyncRun.connection_id == Connection.id)
        .group_by(Connection.name, SyncRun.status)
        .order_by(Connection.name, SyncRun.status)
    ).all()
    return [RunCount(name, status, int(runs), int(calls)) for name, status, runs, calls in rows]


def row_counts(session: Session) -> list[RowCount]:
    """Rows inserted, updated and deleted per connection and stream, summed over succeeded runs."""
    rows = session.execute(
        text(
            """
            SELECT c.name, s.key, a.action, sum((s.value ->> a.action)::bigint)
            FROM sync_runs r
            JOIN connections c ON c.id = r.connection_id
            CROSS JOIN LATERAL jsonb_each(r.rows_by_entity) AS s(key, value)
            CROSS JOIN unnest(CAST(:actions AS text[])) AS a(action)
            WHERE r.status = 'succeeded' AND s.value ? a.action
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """
        ),
        {"actions": list(ROW_ACTIONS)},
    ).all()
    return [RowCount(name, entity, action, int(count)) for name, entity, action, count in rows]


def entity_last_success(session: Session) -> dict[tuple[int, str], datetime]:
    """(connection id, entity) -> when the newest succeeded run that synced that entity finished."""
    rows = session.execute(
        text(
            """
            SELECT r.connection_id, e.entity, max(r.finished_at)
            FROM sync_runs r CROSS JOIN LATERAL unnest(r.entities) AS e(entity)
            WHERE r.status = 'succeeded' AND r.finished_at IS NOT NULL
            GROUP BY 1, 2
            """
        )
    ).all()
    return {(int(connection_id), str(entity)): finished for connection_id, entity, finished in rows}


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
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError as exc:  # NOT_FOUND: nobody declared it yet (Redis: no list until a message arrives)
            if "NOT_FOUND" in str(exc):
                return 0
            raise
        finally:
            channel.close()
