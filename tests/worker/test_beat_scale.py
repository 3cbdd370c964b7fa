"""Beat at scale: due connections are claimed through the partial index, messages are published in batches (one
broker transaction each) that a real worker consumes, and a failed batch leaves only its own connections due."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest
import redis
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, SyncRun
from syncs.core.clock import to_datetime
from syncs.core.settings import Settings
from tests.support.clock import FakeClock
from tests.worker.conftest import stop, wait_for
from worker import scheduler
from worker.app import SYNC_TASK, create_app
from worker.publish import TaskCall, publish_many
from worker.scheduler import CLAIM_DUE, ConnectionScheduler, Due, schedule_due_connections

ROWS = 100_000


def fill_connections(db: sessionmaker[Session], now: Any) -> None:
    """100,000 connections: 10 due, the rest active but not due yet, or paused or inactive and long overdue."""
    with db.begin() as session:
        session.execute(
            text(
                "INSERT INTO connections (name, region, status, paused, sync_interval_minutes, next_sync_at)"
                " SELECT 'c' || g, 'nl',"
                "  (CASE WHEN g % 3 = 0 THEN 'reauth_required' ELSE 'active' END)::connection_status,"
                "  g % 3 = 1,"
                "  15,"
                "  CASE WHEN g <= 10 THEN :now - interval '1 minute'"
                "       WHEN g % 3 = 2 THEN :now + interval '10 minutes'"
                "       ELSE :now - interval '3 days' END"
                " FROM generate_series(1, :rows) g"
            ),
            {"now": now, "rows": ROWS},
        )
        session.execute(text("ANALYZE connections"))


def test_due_connections_are_claimed_through_the_partial_index(db: sessionmaker[Session]) -> None:
    clock = FakeClock()
    now = to_datetime(clock.now())
    fill_connections(db, now)
    with db() as session:
        plan = "\n".join(session.scalars(text(f"EXPLAIN {CLAIM_DUE.text}"), {"now": now}).all())
    assert "ix_connections_due" in plan, plan
    assert "Seq Scan" not in plan, plan

    sent: list[str] = []
    names = schedule_due_connections(db, lambda batch: sent.extend(due.name for due in batch), clock)
    due = sorted(f"c{g}" for g in range(1, 11) if g % 3 == 2)  # active, unpaused and due
    assert names == sent == due
    assert schedule_due_connections(db, lambda batch: sent.extend(due.name for due in batch), clock) == []


def test_a_failed_batch_leaves_only_its_connections_due(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "SEND_BATCH", 2)
    with db.begin() as session:
        session.add_all(Connection(name=name, region="nl") for name in "abcde")
    clock = FakeClock()
    batches: list[list[str]] = []

    def send(batch: Sequence[Due]) -> None:
        names = [due.name for due in batch]
        if names == ["c", "d"]:
            raise ConnectionError("broker down (test)")
        batches.append(names)

    assert schedule_due_connections(db, send, clock) == ["a", "b", "e"]
    assert batches == [["a", "b"], ["e"]]
    assert schedule_due_connections(db, send, clock) == []  # c and d are due again, but their send fails again
    batches.clear()
    assert schedule_due_connections(db, lambda batch: batches.append([d.name for d in batch]), clock) == ["c", "d"]


def test_messages_published_in_bulk_run_in_a_real_worker_once(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    queue_length: Callable[[], int],
    celery_worker: subprocess.Popen[bytes],
) -> None:
    add_sandbox_connection("acme")
    add_sandbox_connection("bravo")
    beat = ConnectionScheduler(app=create_app(sandbox_settings), settings=sandbox_settings, clock=FakeClock())
    try:
        beat.tick()
        beat.tick()  # nothing is due any more: never sent twice
    finally:
        beat.close()

    def both_succeeded() -> bool:
        with db() as session:
            return sorted(session.scalars(select(SyncRun.status))) == ["succeeded", "succeeded"]

    try:
        wait_for(both_succeeded, timeout=90)
    except AssertionError:
        raise AssertionError(stop(celery_worker)) from None
    with db() as session:
        assert sorted(session.scalars(select(SyncRun.trigger))) == ["beat", "beat"]
    assert queue_length() == 0


def test_a_bulk_message_has_the_envelope_and_headers_of_send_task(
    sandbox_settings: Settings, redis_client: redis.Redis[bytes]
) -> None:
    app = create_app(sandbox_settings)
    queue = sandbox_settings.celery_queue
    app.send_task(SYNC_TASK, args=["acme"], kwargs={"trigger": "beat"}, queue=queue, expires=900)
    [task_id] = publish_many(app, SYNC_TASK, queue, [TaskCall(("acme",), {"trigger": "beat"}, 900.0)])
    stored = redis_client.lrange(f"{sandbox_settings.celery_key_prefix}{queue}", 0, 1)  # LPUSH: newest first
    bulk, single = (json.loads(raw) for raw in stored)
    assert bulk.keys() == single.keys()
    assert bulk["headers"].keys() == single["headers"].keys()
    assert bulk["properties"].keys() <= single["properties"].keys() | {"expiration"}
    assert bulk["headers"]["id"] == task_id and bulk["headers"]["task"] == SYNC_TASK
    assert bulk["properties"]["delivery_info"] == single["properties"]["delivery_info"]
    decoded = [json.loads(base64.b64decode(message["body"])) for message in (bulk, single)]
    assert decoded[0] == decoded[1] == [["acme"], {"trigger": "beat"}, decoded[1][2]]
    expires = [datetime.fromisoformat(m["headers"]["expires"]) for m in (bulk, single)]
    assert abs((expires[0] - expires[1]).total_seconds()) < 60
