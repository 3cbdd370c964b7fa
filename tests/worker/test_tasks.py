"""The queued path with a real Celery worker subprocess: send_task by name -> the run lands in sync_runs."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, SyncRun
from syncs.core.settings import Settings
from syncs.entities.registry import ENTITIES
from syncs.sandbox.server import SandboxServer
from tests.support.cli import CliInvoke
from tests.support.runs import connection_id, send_sync, summary_of
from tests.worker.conftest import CURRENT, start_celery_worker, stop, wait_for
from worker.app import create_app
from worker.tasks import rate_limit_countdown


def test_send_task_by_name_runs_the_sync_in_the_worker(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    celery_worker: subprocess.Popen[bytes],
    sandbox: SandboxServer,
) -> None:
    add_sandbox_connection("acme")
    summary = summary_of(send_sync(sandbox_settings), celery_worker)
    assert summary["status"] == "succeeded", summary
    assert summary["inserted"] > 0
    assert summary["api_calls"] > 0
    with db() as session:
        run = session.scalars(select(SyncRun)).one()
        assert (run.status, run.trigger, run.id) == ("succeeded", "task", summary["run_id"])
        assert run.rows_inserted == summary["inserted"]
        assert sorted(run.entities) == sorted(ENTITIES)
        in_current = select(func.count()).select_from(Account).where(Account.division == CURRENT)
        assert session.scalar(in_current) == len(sandbox.state.accounts(CURRENT))


def test_fatal_error_is_not_retried_and_the_run_says_why(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    celery_worker: subprocess.Popen[bytes],
    cli: CliInvoke,
    sandbox: SandboxServer,
) -> None:
    # A refresh token that died (e.g. used by another tool): the first refresh meets "Old refresh token used".
    dead = sandbox.state.issue_tokens()["refresh_token"]
    assert sandbox.state.revoke_refresh_tokens() >= 1
    added = cli("connections", "add", "acme", "--region", "nl", "--refresh-token", dead)
    assert added.exit_code == 0, added.output
    summary = summary_of(send_sync(sandbox_settings), celery_worker)
    assert summary["status"] == "failed"
    assert "ReauthRequiredError" in summary["error"]
    with db() as session:
        runs = session.scalars(select(SyncRun)).all()
        assert len(runs) == 1, "a fatal error must not be retried"
        assert runs[0].status == "failed" and "ReauthRequiredError" in (runs[0].error or "")


def test_unknown_connection_fails_without_a_run(
    sandbox_settings: Settings, db: sessionmaker[Session], celery_worker: subprocess.Popen[bytes]
) -> None:
    app = create_app(sandbox_settings)
    summary = app.send_task("exact.sync_connection", args=["nope"], queue=sandbox_settings.celery_queue).get(timeout=60)
    assert summary["status"] == "failed"
    assert "unknown connection 'nope'" in summary["error"]
    with db() as session:
        assert session.scalar(select(func.count()).select_from(SyncRun)) == 0


def test_rate_limit_countdown_waits_until_retry_at_but_not_beyond_the_visibility_timeout() -> None:
    wait = rate_limit_countdown(retry_at=1000.0 + 42, now=1000.0, visibility_timeout=3600)
    assert wait is not None and 42 <= wait <= 47
    assert rate_limit_countdown(retry_at=1000.0 - 5, now=1000.0, visibility_timeout=3600) is not None
    assert rate_limit_countdown(retry_at=1000.0 + 7200, now=1000.0, visibility_timeout=3600) is None


def test_cli_sync_wait_prints_the_outcome(
    add_sandbox_connection: Callable[..., Any],
    celery_worker: subprocess.Popen[bytes],
    cli: CliInvoke,
    db: sessionmaker[Session],
) -> None:
    add_sandbox_connection("acme")
    result = cli("sync", "acme", "--entity", "accounts", "--wait", "--timeout", "60")
    assert result.exit_code == 0, result.output + stop(celery_worker)
    assert "succeeded" in result.output
    with db() as session:
        run = session.scalars(select(SyncRun)).one()
        assert run.entities == ["accounts"] and run.trigger == "cli-queued"


def test_a_retriable_failure_is_retried_by_the_worker_until_it_succeeds(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    sandbox: SandboxServer,
    redis_client: redis.Redis[bytes],
) -> None:
    # Tokens that are due at once (and that the sandbox lets us refresh at once), so the run needs the token lock.
    sandbox.state.configure(access_token_lifetime=2, refresh_window=2)
    add_sandbox_connection("acme")
    lock = f"{sandbox_settings.redis_key_prefix}:token-lock:{connection_id(db)}"
    redis_client.set(lock, "another worker", px=60_000)  # held elsewhere: LockUnavailableError, a RetriableError
    worker = start_celery_worker(sandbox_settings, TOKEN_LOCK_TIMEOUT_SECONDS="0.3", TASK_RETRY_BACKOFF_SECONDS="1")
    try:
        result = send_sync(sandbox_settings)

        def failed_once() -> bool:
            with db() as session:
                return "failed" in session.scalars(select(SyncRun.status)).all()

        wait_for(failed_once, timeout=60)
        redis_client.delete(lock)  # the other worker is done
        summary = summary_of(result, worker)  # the same task, retried by Celery
    finally:
        log = stop(worker)
    assert summary["status"] == "succeeded", (summary, log)
    with db() as session:
        runs = session.execute(select(SyncRun.status, SyncRun.error).order_by(SyncRun.id)).all()
    assert runs[0].status == "failed" and "LockUnavailableError" in (runs[0].error or "")
    assert runs[-1].status == "succeeded"
    assert "retry" in log.lower()
