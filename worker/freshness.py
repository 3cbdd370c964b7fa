"""How often each entity of a connection is expected to be synced, so freshness is judged against its own schedule.

An entity on the daily reference cadence is not stale after an hour; one whose webhooks are healthy is only swept
every few hours. The dashboard colours freshness and `/metrics` exposes the interval
(`exact_sync_entity_interval_seconds`) from this one function, so an alert can compare age with interval.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from models import Connection
from syncs.core.settings import Settings
from syncs.engine.cadence import schedule_for
from syncs.webhooks.health import synced_divisions
from worker.polling import polling_plan, safety_sweep


def expected_intervals(
    session: Session, settings: Settings, client: redis.Redis[Any], connection: Connection, now: float
) -> dict[str, float]:
    """Seconds between two syncs of each entity the connection has on: its cadence or override (never less than
    the connection's interval), or the webhook safety sweep while its topic's webhooks are healthy. Entities
    switched off are absent. Redis unreadable: webhook health is not assumed (the shorter interval)."""
    every_run = connection.sync_interval_minutes * 60.0
    schedule = schedule_for(session, connection.id, datetime.fromtimestamp(now, UTC))
    try:
        covered = polling_plan(settings, client, connection.id).covered(
            session, list(schedule.intervals), synced_divisions(session, connection.id)
        )
    except RedisError:
        covered = []
    swept = schedule.swept(covered, safety_sweep(settings))  # the rule beat's runs follow (worker.polling)
    return {
        name: every_run if interval is None else max(every_run, interval.total_seconds())
        for name, interval in swept.intervals.items()
    }
