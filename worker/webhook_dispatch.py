"""Handing recorded webhook events to the broker as debounced targeted syncs (from `serve` and the sweeper)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import redis
import structlog
from celery import Celery
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models import WebhookEvent
from syncs.core.settings import Settings
from syncs.webhooks.debounce import Debouncer
from syncs.webhooks.events import IGNORED, OPEN, Target, mark_queued, stranded, targets_for
from worker.app import WEBHOOK_SYNC_TASK

log = structlog.get_logger(__name__)


def redis_for_webhooks(settings: Settings) -> redis.Redis[Any]:
    """Short timeouts: a dead Redis must not hold Exact's request (the event is already recorded)."""
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)


class Dispatcher:
    def __init__(self, settings: Settings, celery_app: Celery, client: redis.Redis[Any]) -> None:
        self.settings = settings
        self.celery_app = celery_app
        self.debouncer = Debouncer(client, settings.redis_key_prefix, settings.webhook_debounce_seconds)

    def _send(self, target: Target, delay: float) -> None:
        self.celery_app.send_task(
            WEBHOOK_SYNC_TASK,
            args=[target.connection, target.division, target.topic],
            countdown=delay,
            queue=self.settings.celery_queue,
            retry=False,  # the broker down: fail now, the sweeper sends the event later
        )

    def dispatch(self, sessions: sessionmaker[Session], targets: Sequence[Target]) -> bool:
        """Schedule (or join) a sync per target, then mark the events queued; False (logged) when Redis or the
        broker failed: the events stay `received` for the sweeper."""
        try:
            for target in targets:
                if self.debouncer.schedule(target, self._send):
                    log.info("webhook.sync_scheduled", connection=target.connection, division=target.division,
                             topic=target.topic, delay=self.debouncer.debounce)  # fmt: skip
        except Exception as exc:
            log.warning("webhook.enqueue_failed", error=type(exc).__name__, targets=len(targets))
            return False
        with sessions.begin() as session:
            for division, topic in {(t.division, t.topic) for t in targets}:
                mark_queued(session, division, topic)
        return True

    def sweep(self, sessions: sessionmaker[Session]) -> int:
        """Send again what the broker never took, or what no sync settled within webhook_requeue_after_seconds;
        returns how many (division, topic) pairs were handed over."""
        requeue_after = timedelta(seconds=self.settings.webhook_requeue_after_seconds)
        with sessions() as session:
            now = session.scalar(select(func.now()))
            assert now is not None
            pairs = stranded(session, now, requeue_after)
            work = [(division, topic, targets_for(session, division, topic)) for division, topic in pairs]
        handed = 0
        for division, topic, targets in work:
            if not targets:
                _ignore(sessions, division, topic)
            elif self.dispatch(sessions, targets):
                handed += 1
        if work:
            log.info("webhook.swept", pairs=len(work), handed=handed)
        return handed


def _ignore(sessions: sessionmaker[Session], division: int, topic: str) -> None:
    """The connection or division is gone since the event arrived."""
    with sessions.begin() as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.division == division, WebhookEvent.topic == topic, WebhookEvent.status.in_(OPEN))
            .values(status=IGNORED, reason="no active connection syncs this division or topic any more")
        )
