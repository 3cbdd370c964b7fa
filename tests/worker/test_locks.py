"""Locks of a run (worker.locks): a run whose lock's database connection is killed stops before its next page
commit, and divisions of one connection sync in parallel on a real prefork worker, reported as one run."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from models import SyncCursor, SyncRun
from syncs.core.errors import LockLostError
from syncs.core.settings import Settings
from syncs.sandbox.server import SandboxServer
from tests.faults.conftest import assert_equal_to_source
from tests.support.runs import connection_id, send_sync, summary_of, sync_in_thread
from tests.worker.conftest import CURRENT, start_celery_worker, stop, wait_for
from worker.locks import division_namespace
from worker.runs import execute_sync

SECOND = 124133


def kill_division_locks(db: sessionmaker[Session], connection: int) -> int:
    """pg_terminate_backend of every backend holding a division lock of `connection`; how many were killed."""
    with db.begin() as session:
        killed = session.scalars(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid::bigint = :first AND objsubid = 2"
            ),
            {"first": division_namespace(connection) & 0xFFFFFFFF},
        ).all()
    return len([k for k in killed if k])


def test_a_run_whose_lock_backend_is_killed_stops_before_its_next_page_commit(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    sandbox: SandboxServer,
) -> None:
    sandbox.state.generate(CURRENT, accounts=300, invoices=10, lines_per_invoice=1)
    sandbox.state.config.page_size = 10
    sandbox.state.config.latency = 0.03
    add_sandbox_connection("acme", "--division", str(CURRENT))
    acme = connection_id(db)
    thread, ended = sync_in_thread(sandbox_settings)
    try:

        def committing() -> bool:
            with db() as session:
                return bool(session.scalar(select(func.count()).select_from(SyncCursor)))

        wait_for(committing, timeout=30)
        assert kill_division_locks(db, acme) == 1
    finally:
        thread.join(60)
    assert len(ended) == 1 and isinstance(ended[0], LockLostError), ended
    with db() as session:
        failed = session.scalars(select(SyncRun)).one()
        assert failed.status == "failed" and (failed.error or "").startswith("LockLostError"), failed.error
        resume = session.scalar(select(SyncCursor.resume_url).where(SyncCursor.entity == "accounts"))
    assert resume is not None  # stopped mid-enumeration, its committed pages recorded

    sandbox.state.config.latency = 0
    assert execute_sync(sandbox_settings, "acme").status == "succeeded"
    assert_equal_to_source(db, sandbox.state, CURRENT)


@pytest.fixture
def prefork_worker(sandbox_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` with the prefork pool users run, two processes."""
    process = start_celery_worker(sandbox_settings, pool="prefork", concurrency=2)
    yield process
    stop(process)


def test_divisions_sync_as_tasks_of_their_own_and_the_result_reports_the_connection(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    sandbox: SandboxServer,
    prefork_worker: subprocess.Popen[bytes],
) -> None:
    add_sandbox_connection("acme")  # every division: the sandbox has two
    summary = summary_of(send_sync(sandbox_settings), prefork_worker, timeout=90)
    assert summary["status"] == "succeeded", summary
    assert sorted(summary["divisions"]) == [CURRENT, SECOND]
    with db() as session:
        run = session.scalars(select(SyncRun)).one()
    assert (run.id, run.status, run.rows_inserted) == (summary["run_id"], "succeeded", summary["inserted"])
    assert run.api_calls == summary["api_calls"] > 0
    for division in (CURRENT, SECOND):
        assert_equal_to_source(db, sandbox.state, division)
    log = stop(prefork_worker)
    assert log.count("Task exact.sync_division[") >= 2 * 2, log  # received and succeeded, per division
    assert "exact.finish_run" in log
