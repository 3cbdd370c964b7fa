"""What a real worker leaves in the tests' Redis database: every key of a test's run, Celery's results and chord
counters included, carries the test's prefix, so the cleanup after the test leaves none of them behind."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.settings import Settings
from tests.conftest import clean_test_keys
from tests.support.runs import send_sync, summary_of
from tests.worker.conftest import start_celery_worker, stop

TASK_ID = re.compile(r"\[([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\]")


def test_a_run_through_a_real_worker_leaves_no_key_behind(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
) -> None:
    add_sandbox_connection("acme")
    worker = start_celery_worker(sandbox_settings)
    try:
        result = send_sync(sandbox_settings)
        summary = summary_of(result, worker, timeout=120)
    finally:
        log = stop(worker)
    assert summary["status"] == "succeeded", log
    # The run's tasks: the sync task (replaced by a chord), one task per division and the chord's end.
    tasks = {result.id, *TASK_ID.findall(log)}
    assert len(tasks) >= 3, log

    def ours(key: bytes) -> bool:
        return redis_prefix in key.decode() or any(task in key.decode() for task in tasks)

    left = sorted(key.decode() for key in redis_client.scan_iter() if ours(key))
    results = [key for key in left if "celery-task-meta-" in key]
    assert {task for task in tasks if any(task in key for key in results)} == tasks, left  # results were stored
    assert [key for key in left if redis_prefix not in key] == [], "keys of this run without the test's prefix"
    clean_test_keys(redis_client, redis_prefix)
    assert [key for key in redis_client.scan_iter() if ours(key)] == []
