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
from syncs.webhooks.health import synced_divisions, topic_of
from worker.polling import polling_plan


def expected_intervals(
    session: Session, settings: Settings, client: redis.Redis[Any], connection: Connection, now: float
) -> dict[str, float]:
    """Seconds between two syncs of each entity the connection has on: its cadence or override (never less than
    the connection's interval), or the webhook safety sweep while its topic's webhooks are healthy. Entities
    switched off are absent. Redis unreadable: webhook health is not assumed (the shorter interval)."""
    every_run = connection.sync_interval_minutes * 60.0
    schedule = schedule_for(session, connection.id, datetime.fromtimestamp(now, UTC))
    plan = polling_plan(settings, client, connection.id)
    divisions = synced_divisions(session, connection.id)
    healthy: dict[str, bool] = {}
    intervals = {}
    for name, interval in schedule.intervals.items():
        seconds = every_run if interval is None else max(every_run, interval.total_seconds())
        topic = topic_of(name)
        if topic is not None:
            if topic not in healthy:
                try:
                    healthy[topic] = plan.coverage(session, topic, divisions).healthy
                except RedisError:
                    healthy[topic] = False
            if healthy[topic]:
                seconds = max(seconds, settings.webhook_safety_sweep_hours * 3600)
        intervals[name] = seconds
    return intervals
