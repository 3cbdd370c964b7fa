"""Runs in a spawned process: several threads call Exact's API at the same moment, each through the client's auth
flow (which asks the shared refresher for a valid access token), as syncing workers do."""

from __future__ import annotations

import threading
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import redis

from syncs.core.db import session_factory
from syncs.core.settings import Settings
from syncs.exact.client import open_client
from tests.support.tokens import token_store


def ask_for_tokens(settings_values: dict[str, Any], connection_id: int, go: Event, out: Queue[Any]) -> None:
    settings = Settings(_env_file=None, **settings_values)
    sessions = session_factory(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url)
    with open_client(settings, connection_id, "nl", sessions=sessions, redis=client) as exact:
        store = token_store(sessions, settings)
        results: list[str] = []

        def work() -> None:
            try:
                exact.current_me()  # a real API call: the auth flow refreshes when the token is due
                # The stored token right after the call (not whether it is still fresh: on a loaded machine the
                # 4-second token may already be in its next window).
                results.append(store.load(connection_id).access_token or "error: no stored token")
            except Exception as exc:
                results.append(f"error: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=work) for _ in range(3)]
        out.put("ready")
        go.wait(30)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # One real API call with the token we got, to show Exact accepts it.
        me = exact.current_me()
    out.put((results, me["CurrentDivision"]))
