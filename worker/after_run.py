"""What follows a successful run, outside its transactions: outgoing webhooks, and (for scheduled runs) the
webhook health that decides the next polls (from the entity streams the run `read`). Never fails the run."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.settings import Settings
from worker.outgoing import announce_run
from worker.polling import after_scheduled_run
from worker.webhook_dispatch import redis_for_webhooks

log = structlog.get_logger(__name__)


def after_run(
    settings: Settings,
    sessions: sessionmaker[Session],
    connection_id: int,
    run_id: int,
    read: Sequence[str],
    divisions: Sequence[int],
    since: int,
    trigger: str,
) -> None:
    announce_run(settings, sessions, connection_id, run_id, divisions, since)
    if trigger != "beat":
        return
    client = redis_for_webhooks(settings)
    try:
        after_scheduled_run(settings, sessions, client, connection_id, read, since)
    except Exception as exc:
        log.warning("webhook.health_not_updated", run_id=run_id, error=type(exc).__name__)
    finally:
        client.close()
