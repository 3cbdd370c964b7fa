"""Real processes and real time: many workers inside the refresh window make exactly one token request."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.clock import SYSTEM_CLOCK
from syncs.core.settings import Settings
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from tests.client.conftest import store_pair
from tests.client.proc_worker import ask_for_tokens
from tests.support.tokens import token_store

LIFETIME, WINDOW, MARGIN = 4.0, 2.0, 0.2
PROCESSES = 8  # issue 4: eight worker processes enter the refresh window together


@pytest.fixture
def live_sandbox() -> Iterator[SandboxServer]:
    config = SandboxConfig(access_token_lifetime=LIFETIME, refresh_window=WINDOW)
    server = SandboxServer(SandboxState(config, clock=SYSTEM_CLOCK))
    server.start()
    yield server
    server.stop()


def test_processes_and_threads_share_one_refresh(
    live_sandbox: SandboxServer, settings: Settings, db: sessionmaker[Session], connection_id: int
) -> None:
    assert settings.token_encryption_key is not None and settings.exact_client_secret is not None
    values: dict[str, Any] = {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "redis_key_prefix": settings.redis_key_prefix,
        "exact_base_url": live_sandbox.base_url,
        "exact_client_id": settings.exact_client_id,
        "exact_client_secret": settings.exact_client_secret.get_secret_value(),
        "token_encryption_key": settings.token_encryption_key.get_secret_value(),
        "token_refresh_window_seconds": WINDOW,
        "token_refresh_margin_seconds": MARGIN,
    }
    live_settings = settings.model_copy(update={"exact_base_url": live_sandbox.base_url})
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    out: Any = context.Queue()
    workers = [context.Process(target=ask_for_tokens, args=(values, connection_id, go, out)) for _ in range(PROCESSES)]
    issued = live_sandbox.state.issue_tokens()
    store_pair(db, live_settings, connection_id, issued, time.time())
    received = time.time()
    for worker in workers:
        worker.start()
    try:
        # Spawned interpreters start slowly on a loaded machine; the wait for readiness is not the test.
        assert [out.get(timeout=180) for _ in workers] == ["ready"] * PROCESSES
        # Every worker holds the old token; once inside the window all ask at once.
        time.sleep(max(0.0, received + LIFETIME - WINDOW + MARGIN + 0.3 - time.time()))
        live_sandbox.state.reset_counters()
        # The token issued now lives 600 s (the first one's window still opens 2 s after its issue), so a loaded
        # machine cannot reach the next window while the threads finish.
        config = live_sandbox.state.config
        config.access_token_lifetime, config.refresh_window = 600.0, 600.0 - (LIFETIME - WINDOW)
        go.set()
        outcomes = [out.get(timeout=30) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    tokens = [token for results, _ in outcomes for token in results]
    assert len(tokens) == PROCESSES * 3
    assert not [t for t in tokens if t.startswith("error")], tokens
    assert len(set(tokens)) == 1 and tokens[0] != issued["access_token"]
    assert all(division == 124132 for _, division in outcomes)
    counters = live_sandbox.state.counters
    assert counters.token_requests == 1
    assert counters.old_refresh_token_used == 0
    assert counters.token_refresh_refused_early == 0
    assert token_store(db, live_settings).load(connection_id).access_token == tokens[0]
