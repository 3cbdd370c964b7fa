"""Beat scheduling from the connections table: due connections, intervals, no double scheduling."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus
from syncs.core.clock import to_datetime
from syncs.core.settings import Settings
from tests.support.cli import CliInvoke, settings_env
from tests.support.clock import FakeClock
from tests.worker.conftest import CELERY, ROOT, stop, wait_for
from worker.app import create_app
from worker.scheduler import ConnectionScheduler, Due, schedule_due_connections


def make_connections(db: sessionmaker[Session], *names: str, interval: int = 15) -> None:
    with db.begin() as session:
        for name in names:
            session.add(Connection(name=name, region="nl", sync_interval_minutes=interval))


def test_due_connections_are_sent_once_per_interval(db: sessionmaker[Session]) -> None:
    make_connections(db, "a", interval=15)
    make_connections(db, "b", interval=60)
    make_connections(db, "off")
    with db.begin() as session:
        session.execute(
            update(Connection)
            .where(Connection.name == "off")
            .values(status=ConnectionStatus.REAUTH_REQUIRED, status_reason="refresh token expired")
        )
    clock = FakeClock()
    sent: list[tuple[str, int]] = []

    def send(batch: Sequence[Due]) -> None:
        sent.extend((due.name, due.interval_minutes) for due in batch)

    assert schedule_due_connections(db, send, clock) == ["a", "b"]
    assert sent == [("a", 15), ("b", 60)]
    with db() as session:
        next_a = session.scalar(select(Connection.next_sync_at).where(Connection.name == "a"))
    assert next_a == to_datetime(clock.now()) + timedelta(minutes=15)

    clock.advance(14 * 60)
    assert schedule_due_connections(db, send, clock) == []
    clock.advance(60)
    assert schedule_due_connections(db, send, clock) == ["a"]
    clock.advance(45 * 60)
    assert schedule_due_connections(db, send, clock) == ["a", "b"]


def test_pause_resume_and_a_shorter_interval_take_effect_at_the_next_tick(
    db: sessionmaker[Session], cli: CliInvoke
) -> None:
    make_connections(db, "a", interval=60)
    clock = FakeClock()
    sent: list[str] = []

    def send(batch: Sequence[Due]) -> None:
        sent.extend(due.name for due in batch)

    assert schedule_due_connections(db, send, clock) == ["a"]
    result = cli("connections", "set", "a", "--pause")
    assert result.exit_code == 0 and "paused" in result.output
    clock.advance(2 * 3600)
    assert schedule_due_connections(db, send, clock) == []  # paused: not scheduled, however overdue

    assert cli("connections", "set", "a", "--resume").exit_code == 0
    assert schedule_due_connections(db, send, clock) == ["a"]  # the overdue sync goes at once

    # Claimed at `clock`: next sync in 60 min. Shortening to 5 min brings it to last sync + 5 min.
    with db.begin() as session:
        session.execute(update(Connection).values(last_sync_at=to_datetime(clock.now())))
    assert cli("connections", "set", "a", "--interval", "5").exit_code == 0
    with db() as session:
        connection = session.scalars(select(Connection)).one()
    assert connection.sync_interval_minutes == 5
    assert connection.next_sync_at == to_datetime(clock.now()) + timedelta(minutes=5)
    assert cli("connections", "set", "a").exit_code == 2  # nothing to change


def test_a_failed_send_leaves_the_connection_due(db: sessionmaker[Session]) -> None:
    make_connections(db, "a")
    clock = FakeClock()

    def broken(batch: Sequence[Due]) -> None:
        raise ConnectionError("broker down")

    assert schedule_due_connections(db, broken, clock) == []
    assert schedule_due_connections(db, lambda batch: None, clock) == ["a"]


def test_two_beats_racing_never_claim_a_connection_twice(db: sessionmaker[Session]) -> None:
    names = [f"c{i:02}" for i in range(20)]
    make_connections(db, *names)
    clock = FakeClock()
    for _ in range(5):
        with db.begin() as session:
            session.execute(update(Connection).values(next_sync_at=None))
        barrier = threading.Barrier(2)
        results: list[list[str]] = []

        def beat(barrier: threading.Barrier = barrier, results: list[list[str]] = results) -> None:
            barrier.wait()
            results.append(schedule_due_connections(db, lambda batch: None, clock))

        threads = [threading.Thread(target=beat) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        claimed = results[0] + results[1]
        assert sorted(claimed) == names, "every due connection exactly once"


def scheduler(settings: Settings, clock: FakeClock, **conf: Any) -> ConnectionScheduler:
    app = create_app(settings)
    app.conf.update(conf)
    return ConnectionScheduler(app=app, settings=settings, clock=clock)


def test_only_the_leader_schedules_and_a_new_connection_needs_no_restart(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    queue_length: Callable[[], int],
    redis_client: redis.Redis[bytes],
) -> None:
    clock = FakeClock()
    first, second = scheduler(sandbox_settings, clock), scheduler(sandbox_settings, clock)
    try:
        assert first.tick() <= sandbox_settings.beat_tick_seconds
        make_connections(db, "late")  # added while beat runs
        first.tick()
        assert queue_length() == 1
        with db.begin() as session:
            session.execute(update(Connection).values(next_sync_at=None))
        second.tick()  # not the leader: does nothing even though "late" is due again
        assert queue_length() == 1
        assert redis_client.exists(f"{sandbox_settings.redis_key_prefix}:beat-lock")
        first.close()  # the leader stops and releases its lock: the standby takes over at its next tick
        second.tick()
        assert queue_length() == 2
    finally:
        first.close()
        second.close()


def test_static_beat_schedule_entries_keep_working(
    sandbox_settings: Settings, db: sessionmaker[Session], queue_length: Callable[[], int]
) -> None:
    beat = scheduler(
        sandbox_settings,
        FakeClock(),
        beat_schedule={"keep-alive": {"task": "exact.keep_alive", "schedule": 0.05}},
    )
    try:
        beat.tick()  # the first tick of a celery schedule only computes when entries are due
        wait_for(lambda: beat.tick() is not None and queue_length() >= 1, timeout=5, interval=0.06)
    finally:
        beat.close()


@pytest.mark.timeout(60)
def test_celery_beat_subprocess_schedules_a_connection_added_after_start(
    sandbox_settings: Settings, db: sessionmaker[Session], queue_length: Callable[[], int]
) -> None:
    env = {**os.environ, **settings_env(sandbox_settings)}
    process = subprocess.Popen(
        [CELERY, "-A", "worker.app", "beat", "-S", "worker.scheduler:ConnectionScheduler",
         "--loglevel", "INFO", "-s", os.devnull],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: process.poll() is not None or _beat_is_leading(sandbox_settings), timeout=30)
        assert process.poll() is None
        assert queue_length() == 0
        make_connections(db, "late", interval=1)
        wait_for(lambda: queue_length() >= 1 or process.poll() is not None, timeout=30)
        assert queue_length() == 1, stop(process)
    finally:
        output = stop(process)
    assert "Traceback" not in output, output


def _beat_is_leading(settings: Settings) -> bool:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return bool(client.exists(f"{settings.redis_key_prefix}:beat-lock"))
    finally:
        client.close()
