"""Automatic webhook subscription (WEBHOOK_AUTO_SUBSCRIBE, with WEBHOOK_CALLBACK_URL): when a connection is added
or reconnected, task `exact.webhook_subscribe(connection_name)` subscribes every synced topic in every synced
division of it, through the same path as `exact-sync webhooks subscribe` (idempotent; the division list is read
first when it never was). It never fails the connect: a problem sending the task (the broker down), or the task
failing, is logged and kept in `connections.webhook_auto_subscribe`, which `status` shows."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import update

from models import Connection
from syncs.core.clock import SYSTEM_CLOCK, to_datetime
from syncs.core.db import session_factory
from syncs.core.settings import Settings, get_settings
from worker.app import AUTO_SUBSCRIBE_TASK, app, create_app
from worker.run_records import describe
from worker.subscribing import subscribe_connection

log = structlog.get_logger(__name__)


def record_outcome(settings: Settings, name: str, outcome: str) -> None:
    """Keep `outcome`, stamped with the time, as the connection's last automatic subscription; never raises."""
    stamp = to_datetime(SYSTEM_CLOCK.now()).strftime("%Y-%m-%d %H:%M UTC")
    try:
        with session_factory(settings.database_url).begin() as session:
            session.execute(
                update(Connection).where(Connection.name == name).values(webhook_auto_subscribe=f"{stamp}: {outcome}")
            )
    except Exception as exc:
        log.warning("webhook.auto_subscribe_not_recorded", connection=name, error=type(exc).__name__)


def request_auto_subscribe(settings: Settings, name: str) -> None:
    """After a connect: send the subscription task when WEBHOOK_AUTO_SUBSCRIBE is on. Never raises."""
    if not settings.webhook_auto_subscribe:
        return
    if not settings.webhook_callback_url:
        log.warning("webhook.auto_subscribe_not_requested", connection=name, error="no WEBHOOK_CALLBACK_URL")
        record_outcome(settings, name, "not requested: WEBHOOK_CALLBACK_URL is not set")
        return
    try:
        create_app(settings).send_task(
            AUTO_SUBSCRIBE_TASK, args=[name], queue=settings.celery_queue, retry=False, ignore_result=True
        )
    except Exception as exc:  # the broker is down: the connect succeeded all the same
        log.warning("webhook.auto_subscribe_not_requested", connection=name, error=type(exc).__name__)
        record_outcome(settings, name, f"not requested ({type(exc).__name__}); run `exact-sync webhooks subscribe`")
        return
    record_outcome(settings, name, "requested")


@app.task(name=AUTO_SUBSCRIBE_TASK)
def auto_subscribe_task(connection_name: str) -> dict[str, Any]:
    settings = get_settings()
    try:
        done = subscribe_connection(settings, connection_name, None, settings.webhook_callback_url or "")
    except Exception as exc:
        outcome = f"failed: {describe(exc)}"
        log.warning("webhook.auto_subscribe_failed", connection=connection_name, error=describe(exc))
    else:
        made = sum(len(changed) for _, _, changed in done)
        outcome = f"subscribed: {made} new subscription(s) in {len(done)} division(s)"
        log.info("webhook.auto_subscribed", connection=connection_name, made=made, divisions=len(done))
    record_outcome(settings, connection_name, outcome)
    return {"connection": connection_name, "outcome": outcome}
