"""Celery task `exact.keep_alive` (beat entry, every TOKEN_KEEPALIVE_CHECK_MINUTES): see syncs.lifecycle.keepalive.

Safe to run twice at once: every refresh goes through the TokenRefresher's Redis lock and re-reads the stored
pair under a row lock, so a second run finds fresh tokens and does nothing.
"""

from __future__ import annotations

from typing import Any

import redis

from syncs.core.db import session_factory
from syncs.core.settings import get_settings
from syncs.lifecycle.keepalive import keep_alive
from worker.app import KEEP_ALIVE_TASK, app


@app.task(name=KEEP_ALIVE_TASK)
def keep_alive_task() -> dict[str, Any]:
    settings = get_settings()
    redis_client: redis.Redis[Any] = redis.Redis.from_url(settings.redis_url)
    try:
        return keep_alive(settings, session_factory(settings.database_url), redis_client).as_dict()
    finally:
        redis_client.close()
