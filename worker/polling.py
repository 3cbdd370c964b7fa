"""Glue between beat, runs and syncs/webhooks/health.py (polling adapts to healthy webhooks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, WebhookSubscription
from syncs.core.lazy_logger import LazyLogger
from syncs.core.settings import Settings
from syncs.engine.cadence import last_checked, schedule_for
from syncs.webhooks.health import PollingPlan, has_subscriptions, synced_divisions

log = LazyLogger(__name__)


def polling_plan(settings: Settings, client: redis.Redis[Any], connection_id: int) -> PollingPlan:
    return PollingPlan(
        client,
        settings.redis_key_prefix,
        connection_id,
        settings.webhook_safety_sweep_hours * 3600,
        settings.webhook_unhealthy_hours * 3600,
    )


def subscribed_connections(sessions: sessionmaker[Session], connection_ids: Sequence[int]) -> set[int]:
    """Which of these connections have webhook subscriptions (one query; beat asks for thousands at once)."""
    if not connection_ids:
        return set()
    found = select(WebhookSubscription.connection_id).where(WebhookSubscription.connection_id.in_(connection_ids))
    with sessions() as session:
        return set(session.scalars(found.distinct()))


def safety_sweep(settings: Settings) -> timedelta:
    """How often a scheduled run reads an entity that healthy webhooks cover."""
    return timedelta(hours=settings.webhook_safety_sweep_hours)


@dataclass(frozen=True)
class BeatPlan:
    """What webhooks spare a scheduled run: `covered` entities are read only as the safety sweep (the others keep
    their cadence); `idle`: no division has anything due, so beat sends no run at all."""

    covered: list[str]
    idle: bool = False


def beat_plan(
    settings: Settings, sessions: sessionmaker[Session], client: redis.Redis[Any], name: str, now: datetime
) -> BeatPlan:
    """The plan of a scheduled run of `name` starting `now`; without webhook subscriptions (or on any error while
    working it out) nothing is covered and everything keeps its cadence."""
    try:
        with sessions() as session:
            connection_id = session.scalar(select(Connection.id).where(Connection.name == name))
            if connection_id is None or not has_subscriptions(session, connection_id):
                return BeatPlan([])
            divisions = synced_divisions(session, connection_id)
            schedule = schedule_for(session, connection_id, now)
            covered = polling_plan(settings, client, connection_id).covered(
                session, list(schedule.intervals), divisions
            )
            if not covered:
                return BeatPlan([])
            swept = schedule.swept(covered, safety_sweep(settings))
            idle = not any(swept.due(last_checked(session, connection_id, division)) for division in divisions)
            return BeatPlan(covered, idle)
    except Exception as exc:
        log.warning("webhook.polling_plan_failed", connection=name, error=type(exc).__name__)
        return BeatPlan([])


def after_scheduled_run(
    settings: Settings,
    sessions: sessionmaker[Session],
    client: redis.Redis[Any],
    connection_id: int,
    polled: Sequence[str],
    after_seq: int,
) -> None:
    with sessions() as session:
        polling_plan(settings, client, connection_id).after_poll(session, polled, after_seq)
