"""Glue between beat, runs and syncs/webhooks/health.py (polling adapts to healthy webhooks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, WebhookSubscription
from syncs.core.settings import Settings
from syncs.entities.registry import DEFAULT_ENTITIES
from syncs.webhooks.health import PollingPlan, has_subscriptions, synced_divisions

log = structlog.get_logger(__name__)


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


def scheduled_entities(
    settings: Settings, sessions: sessionmaker[Session], client: redis.Redis[Any], name: str
) -> list[str] | None:
    """What a scheduled run of `name` polls: None (everything) without webhook subscriptions; else every
    entity but those of healthy topics whose safety sweep is not due (possibly none). On any error: None."""
    try:
        with sessions() as session:
            connection_id = session.scalar(select(Connection.id).where(Connection.name == name))
            if connection_id is None or not has_subscriptions(session, connection_id):
                return None
            divisions = synced_divisions(session, connection_id)
            return polling_plan(settings, client, connection_id).entities_to_poll(
                session, list(DEFAULT_ENTITIES), divisions
            )
    except Exception as exc:
        log.warning("webhook.polling_plan_failed", connection=name, error=type(exc).__name__)
        return None


def after_scheduled_run(
    settings: Settings,
    sessions: sessionmaker[Session],
    client: redis.Redis[Any],
    connection_id: int,
    polled: Sequence[str],
    after_seq: int,
) -> None:
    with sessions() as session:
        divisions = synced_divisions(session, connection_id)
        polling_plan(settings, client, connection_id).after_poll(session, polled, divisions, after_seq)
