"""Polling adapts to webhooks: while a topic's webhooks are healthy, its entities are only polled as a safety sweep.

A topic is healthy for a connection when every synced division has a subscription to it (our copy,
`webhook_subscriptions`) and no recent poll found changes that no webhook announced. A scheduled (beat) run then
reads the entities of healthy topics ("covered") at most once per WEBHOOK_SAFETY_SWEEP_HOURS (the safety sweep:
their cadence interval is raised to it, syncs.engine.cadence.Schedule.swept); every other entity keeps its own
cadence. A poll that finds changes in an entity of a subscribed topic while no event of that topic and division
is waiting means events went missing: the topic is flagged unhealthy for WEBHOOK_UNHEALTHY_HOURS (each such poll
extends it) and its entities are polled at the normal cadence meanwhile; `status` says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from models import Change, Division, WebhookEvent, WebhookSubscription
from syncs.entities.registry import ENTITIES
from syncs.webhooks.events import OPEN


@dataclass(frozen=True)
class Coverage:
    healthy: bool
    reason: str


def topic_of(entity: str) -> str | None:
    return ENTITIES[entity].entity.topic if entity in ENTITIES else None


class PollingPlan:
    """Which entities a scheduled run polls, given the connection's webhooks (Redis keys under `prefix`)."""

    def __init__(
        self, client: redis.Redis[Any], prefix: str, connection_id: int, sweep_seconds: float, unhealthy_seconds: float
    ) -> None:
        self.client = client
        self.connection_id = connection_id
        self.sweep_seconds = sweep_seconds
        self.unhealthy_seconds = unhealthy_seconds
        self._prefix = f"{prefix}:webhook"

    def _flag(self, topic: str) -> str:
        return f"{self._prefix}:unhealthy:{self.connection_id}:{topic}"

    def coverage(self, session: Session, topic: str | None, divisions: Sequence[int]) -> Coverage:
        if topic is None:
            return Coverage(False, "no webhook topic")
        subscribed = self._subscribed(session, topic)
        missing = [d for d in divisions if d not in subscribed]
        if not divisions or missing:
            return Coverage(False, f"not subscribed in division {', '.join(map(str, missing))}" if missing else "")
        flag = self.client.get(self._flag(topic))
        if flag is not None:
            return Coverage(False, flag.decode() if isinstance(flag, bytes) else str(flag))
        return Coverage(True, f"webhooks healthy: polled every {self.sweep_seconds / 3600:g} h as a safety sweep")

    def covered(self, session: Session, names: Sequence[str], divisions: Sequence[int]) -> list[str]:
        """Those of `names` whose topic's webhooks are healthy: a scheduled run reads them only as a safety sweep."""
        healthy: dict[str, bool] = {}
        found = []
        for name in names:
            topic = topic_of(name)
            if topic is None:
                continue
            if topic not in healthy:
                healthy[topic] = self.coverage(session, topic, divisions).healthy
            if healthy[topic]:
                found.append(name)
        return found

    def after_poll(self, session: Session, polled: Sequence[str], after_seq: int) -> None:
        """After a successful scheduled run that read the streams `polled`: changes no webhook announced flag their
        topic unhealthy."""
        for name in polled:
            topic = topic_of(name)
            if topic is None:
                continue
            found = session.execute(
                select(Change.division, func.sum(Change.inserted + Change.updated + Change.deleted))
                .where(Change.connection_id == self.connection_id, Change.entity == name, Change.seq > after_seq)
                .group_by(Change.division)
            ).all()
            subscribed = self._subscribed(session, topic)
            for division, count in found:
                if not count or division not in subscribed or self._waiting(session, division, topic):
                    continue
                reason = f"a poll found {count} change(s) in {name} of division {division} that no webhook announced"
                self.client.set(self._flag(topic), reason, ex=max(1, int(self.unhealthy_seconds)))

    def _subscribed(self, session: Session, topic: str) -> set[int]:
        return set(
            session.scalars(
                select(WebhookSubscription.division).where(
                    WebhookSubscription.connection_id == self.connection_id, WebhookSubscription.topic == topic
                )
            )
        )

    @staticmethod
    def _waiting(session: Session, division: int, topic: str) -> bool:
        """An event of this topic and division is waiting for its sync: the poll merely came first."""
        return bool(
            session.scalar(
                select(func.count())
                .select_from(WebhookEvent)
                .where(WebhookEvent.division == division, WebhookEvent.topic == topic, WebhookEvent.status.in_(OPEN))
            )
        )


def synced_divisions(session: Session, connection_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Division.code)
            .where(Division.connection_id == connection_id, Division.sync_enabled, Division.available)
            .order_by(Division.code)
        )
    )


def has_subscriptions(session: Session, connection_id: int) -> bool:
    return bool(session.scalar(select(exists().where(WebhookSubscription.connection_id == connection_id))))
