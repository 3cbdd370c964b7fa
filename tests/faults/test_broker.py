"""The worker and its broker, for real: a plain Celery client reaches it (the README's snippet, verbatim), and it
rides out a Redis restart mid-run. Each test has a private redis-server, so Celery's default queue `celery` and
its result keys are nobody else's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import SyncRun
from syncs.core.settings import Settings
from syncs.sandbox import SandboxServer
from tests.faults.conftest import OwnRedis, aimed_at_fast_tokens, assert_equal_to_source, cursors, register
from tests.support.cli import settings_env
from tests.worker.conftest import ROOT, stop, wait_for

EXACT_SYNC = str(Path(sys.executable).with_name("exact-sync"))
README_URL = "redis://127.0.0.1:6379/0"


def readme_snippet() -> str:
    """The Python block under "Triggering a sync from your code" in README.md."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Triggering a sync from your code", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README lost its send_task example"
    return match.group(1)


@pytest.fixture
def broker_target(settings: Settings, slow_sandbox: SandboxServer, own_redis: OwnRedis) -> Settings:
    # Celery's standard key names and the default queue, as a plain client expects (the Redis is private).
    return aimed_at_fast_tokens(
        settings, slow_sandbox, redis_url=own_redis.url, celery_key_prefix="", celery_consume_default_queue=True
    )


def start_exact_sync_worker(broker_target: Settings, *extra: str) -> subprocess.Popen[bytes]:
    """`exact-sync worker` as users run it (prefork pool, gossip and mingle on, supervised), on the private Redis."""
    env = {
        **os.environ,
        **settings_env(broker_target),
        "TOKEN_REFRESH_WINDOW_SECONDS": "2",
        "TOKEN_REFRESH_MARGIN_SECONDS": "0.2",
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": "60",
    }
    return subprocess.Popen(
        [EXACT_SYNC, "worker", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture
def exact_sync_worker(broker_target: Settings) -> Iterator[subprocess.Popen[bytes]]:
    process = start_exact_sync_worker(broker_target)
    yield process
    stop(process)


def plain_client(url: str) -> Celery:
    return Celery(broker=url, backend=url)  # nothing of ours: default queue, default result keys


def test_the_readmes_plain_client_sends_and_waits_for_the_result(
    broker_target: Settings,
    db: sessionmaker[Session],
    slow_sandbox: SandboxServer,
    exact_sync_worker: subprocess.Popen[bytes],
) -> None:
    register(db, broker_target, slow_sandbox.state)
    snippet = readme_snippet().replace(README_URL, broker_target.redis_url)
    assert broker_target.redis_url in snippet
    # A fresh interpreter with only Celery's defaults: no import of ours, no Celery settings in the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY", "REDIS"))}
    done = subprocess.run(
        [sys.executable, "-c", snippet], env=env, cwd="/", capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr + stop(exact_sync_worker)
    assert "'status': 'succeeded'" in done.stdout and "'connection': 'acme'" in done.stdout, done.stdout
    with db() as session:
        assert session.scalars(select(SyncRun.status)).all() == ["succeeded"]


def run_statuses(db: sessionmaker[Session]) -> list[tuple[str, str | None]]:
    with db() as session:
        rows = session.execute(select(SyncRun.status, SyncRun.error).order_by(SyncRun.id))
        return [(row.status, row.error) for row in rows]


def test_the_worker_rides_out_a_redis_restart_mid_run(
    broker_target: Settings, db: sessionmaker[Session], slow_sandbox: SandboxServer, own_redis: OwnRedis
) -> None:
    """Celery's main process often dies of kombu's `AttributeError: 'NoneType' object has no attribute 'hostname'`
    while it restores unacknowledged messages on a lost connection (the closing channel builds a new pool from
    connection info that is already released); `exact-sync worker` then starts it again."""
    register(db, broker_target, slow_sandbox.state)
    worker = start_exact_sync_worker(broker_target)
    try:
        plain_client(broker_target.redis_url).send_task("exact.sync_connection", args=["acme"])
        wait_for(lambda: cursors(db) >= 1, timeout=120)  # pages are being committed
        own_redis.stop()
        time.sleep(5.0)  # the run needs Redis meanwhile (rate gate, error budget, token lock)
        own_redis.start()  # empty: the message, locks and budgets are gone
        time.sleep(1.0)  # a celery that dies of the broker's restart does so at once
        assert worker.poll() is None, stop(worker)
        outcome = plain_client(broker_target.redis_url).send_task("exact.sync_connection", args=["acme"])
        try:
            result = outcome.get(timeout=180)
        except Exception as exc:
            raise AssertionError(f"{exc!r}\n{stop(worker)}") from None
        alive = worker.poll() is None
    finally:
        log = stop(worker)
    assert alive, log
    assert result["status"] == "succeeded", result
    runs = run_statuses(db)
    assert runs[-1] == ("succeeded", None) and "running" not in [status for status, _ in runs]
    # The run Redis's restart cut short is failed with the reason (or, if the worker died under it, marked
    # interrupted by the next run).
    first_error = runs[0][1] or ""
    assert runs[0][0] == "failed" and ("Redis unavailable" in first_error or "interrupted" in first_error), runs
    for division in slow_sandbox.state.divisions:
        assert_equal_to_source(db, slow_sandbox.state, division)
    assert slow_sandbox.state.counters.old_refresh_token_used == 0  # no token lost
