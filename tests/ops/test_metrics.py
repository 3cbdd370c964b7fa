"""`/metrics` after real sandbox syncs: the numbers must match what the sandbox served and the database holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models import Account, Connection, SalesInvoice, SalesInvoiceLine, SyncRun
from syncs.core.errors import ReauthRequiredError
from syncs.core.settings import Settings
from syncs.sandbox import SandboxServer
from tests.faults.conftest import register
from tests.lifecycle.conftest import ServerThread
from tests.ops.conftest import ADMIN, scrape, value
from tests.support.clock import FakeClock
from tests.support.net import free_port
from worker.app import SYNC_TASK, create_app
from worker.ops_state import RunCount, entity_last_success, row_counts, run_counts, running_runs
from worker.runs import execute_sync
from worker.web import create_web_app


def rows_in(db: sessionmaker[Session], model: Any, division: int) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(model).where(model.division == division)) or 0


def test_metrics_after_a_sandbox_sync_match_the_sandbox_and_the_tables(
    ops_settings: Settings, db: sessionmaker[Session], sandbox: SandboxServer, clock: FakeClock, web: ServerThread
) -> None:
    state = sandbox.state
    for division in state.divisions:
        state.generate(division, accounts=30, invoices=5, lines_per_invoice=3)
    register(db, ops_settings, state)
    registered_at = clock.now()
    state.configure(burst_429=1)  # each division's first call answers 429: the gate waits it out (fake clock)
    first = execute_sync(ops_settings, "acme", clock=clock)
    doomed = state.accounts(first.divisions[0])[0]["ID"]
    state.delete_account(first.divisions[0], doomed)
    second = execute_sync(ops_settings, "acme", clock=clock)
    clock.advance(120)

    samples = scrape(web.base_url)

    assert value(samples, "exact_sync_up", source="postgres") == 1
    assert value(samples, "exact_sync_up", source="redis") == 1
    assert value(samples, "exact_sync_up", source="broker") == 1
    assert value(samples, "exact_sync_runs_total", connection="acme", status="succeeded") == 2
    assert value(samples, "exact_sync_run_api_calls_total", connection="acme") == first.api_calls + second.api_calls
    accounts = sum(rows_in(db, Account, d) for d in first.divisions)
    invoice_rows = sum(rows_in(db, SalesInvoice, d) + rows_in(db, SalesInvoiceLine, d) for d in first.divisions)
    assert value(samples, "exact_sync_rows_total", connection="acme", entity="accounts", action="inserted") == accounts
    assert (
        value(samples, "exact_sync_rows_total", connection="acme", entity="sales_invoices", action="inserted")
        == invoice_rows
    )
    assert value(samples, "exact_sync_rows_total", connection="acme", entity="deleted", action="deleted") == 1
    counters = state.counters
    # Per rate bucket: a division, or "current" for current/Me and system/Divisions (the sandbox counts those
    # under the division in their URL, so only the sums compare).
    calls = [v for (name, _), v in samples.items() if name == "exact_sync_api_calls_total"]
    limited = [v for (name, _), v in samples.items() if name == "exact_sync_api_rate_limited_total"]
    assert sum(calls) == sum(counters.api_calls.values()) + sum(counters.burst_429_sent.values())
    assert sum(limited) == sum(counters.burst_429_sent.values()) == len(first.divisions)
    for division in first.divisions:
        daily_left = state.config.daily_limit - counters.api_calls[division]  # type: ignore[operator]
        assert value(samples, "exact_sync_budget_remaining", division=division, window="daily") == daily_left
        assert value(samples, "exact_sync_budget_limit", division=division, window="daily") == 5000
        assert value(samples, "exact_sync_division_last_sync_age_seconds", connection="acme", division=division) == 120
    for entity in ("accounts", "sales_invoices"):
        assert value(samples, "exact_sync_entity_last_success_age_seconds", connection="acme", entity=entity) == 120
    assert value(samples, "exact_sync_connection_status", connection="acme", status="active") == 1
    assert value(samples, "exact_sync_connection_status", connection="acme", status="reauth_required") == 0
    assert value(samples, "exact_sync_token_refresh_failures", connection="acme") == 0
    age = clock.now() - registered_at  # issued at registration, no refresh since (the 429 waits moved the clock)
    assert value(samples, "exact_sync_refresh_token_age_seconds", connection="acme") == age
    assert value(samples, "exact_sync_refresh_token_expires_in_seconds", connection="acme") == 30 * 86400 - age
    assert value(samples, "exact_sync_queue_messages", queue=ops_settings.celery_queue) == 0

    celery_app = create_app(ops_settings)
    for _ in range(2):  # no worker listens: they wait in the queue
        celery_app.send_task(SYNC_TASK, args=["acme"], queue=ops_settings.celery_queue)
    assert value(scrape(web.base_url), "exact_sync_queue_messages", queue=ops_settings.celery_queue) == 2


def test_metrics_need_the_admin_token(web: ServerThread) -> None:
    assert httpx.get(f"{web.base_url}/metrics").status_code == 401
    assert httpx.get(f"{web.base_url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{web.base_url}/metrics", headers=ADMIN).status_code == 200


def test_a_source_that_is_down_is_reported_not_zeroed(
    ops_settings: Settings, db: sessionmaker[Session], sandbox: SandboxServer, clock: FakeClock
) -> None:
    register(db, ops_settings, sandbox.state)
    execute_sync(ops_settings, "acme", clock=clock)
    dead_redis = ops_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with ServerThread(create_web_app(dead_redis, clock), free_port()) as web:
        samples = scrape(web.base_url)
    assert value(samples, "exact_sync_up", source="redis") == 0
    assert value(samples, "exact_sync_up", source="broker") == 0
    assert value(samples, "exact_sync_up", source="postgres") == 1
    assert value(samples, "exact_sync_runs_total", connection="acme", status="succeeded") == 1
    assert not [key for key in samples if key[0] == "exact_sync_api_calls_total"]  # unknown, not zero


def test_reauth_required_shows_in_the_status_metric(
    ops_settings: Settings, db: sessionmaker[Session], sandbox: SandboxServer, clock: FakeClock, web: ServerThread
) -> None:
    register(db, ops_settings, sandbox.state)
    sandbox.state.revoke_refresh_tokens()
    clock.advance(600)  # the access token expired: the run must refresh, and Exact refuses the refresh token
    with pytest.raises(ReauthRequiredError):
        execute_sync(ops_settings, "acme", clock=clock)
    samples = scrape(web.base_url)
    assert value(samples, "exact_sync_connection_status", connection="acme", status="reauth_required") == 1
    assert value(samples, "exact_sync_runs_total", connection="acme", status="failed") == 1
    assert not [key for key in samples if key[0] == "exact_sync_entity_last_success_age_seconds"]




def test_totals_count_each_finished_run_once_whoever_writes_it(db: sessionmaker[Session]) -> None:
    """The trigger behind the counters: a run counts when it is recorded finished, once, and leaves with its
    connection; so scrapes read totals instead of every run ever recorded."""
    finished = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.begin() as session:
        acme = Connection(name="acme", region="nl")
        session.add(acme)
        session.flush()
        running = SyncRun(connection_id=acme.id, entities=["accounts"], trigger="beat", status="running")
        session.add_all([running, SyncRun(connection_id=acme.id, entities=["accounts"], trigger="beat",
                                          status="failed", api_calls=2, error="boom")])  # fmt: skip
    with db.begin() as session:
        assert running_runs(session) == {"acme": 1}
        run = session.get_one(SyncRun, running.id)
        run.status, run.finished_at, run.api_calls = "succeeded", finished, 5
        run.rows_by_entity = {"accounts": {"inserted": 3, "updated": 1, "deleted": 0}, "deleted": {"deleted": 2}}
    with db.begin() as session:
        session.get_one(SyncRun, running.id).error = "edited afterwards"  # no status change: not counted again
        session.execute(update(SyncRun).values(status="succeeded").where(SyncRun.id == running.id))
    with db() as session:
        assert running_runs(session) == {}
        assert run_counts(session) == [RunCount("acme", "failed", 1, 2), RunCount("acme", "succeeded", 1, 5)]
        rows = {(r.entity, r.action): r.rows for r in row_counts(session)}
        assert rows == {
            ("accounts", "inserted"): 3, ("accounts", "updated"): 1, ("accounts", "deleted"): 0,
            ("deleted", "inserted"): 0, ("deleted", "updated"): 0, ("deleted", "deleted"): 2,
        }  # fmt: skip
        assert entity_last_success(session)[(acme.id, "accounts")] == finished
    with db.begin() as session:
        session.execute(delete(Connection))
    with db() as session:
        assert run_counts(session) == [] and row_counts(session) == []


def test_the_queue_gauge_counts_every_queue_the_worker_consumes(ops_settings: Settings, clock: FakeClock) -> None:
    """Plain Celery clients send to Celery's default queue, which the worker also consumes: tasks waiting there
    are waiting all the same. (Celery's keys carry the test's prefix, so this `celery` queue is the test's own.)"""
    assert ops_settings.celery_key_prefix, "an unprefixed default queue would be shared with other tests"
    consuming = ops_settings.model_copy(update={"celery_consume_default_queue": True})
    create_app(consuming).send_task(SYNC_TASK, args=["acme"], queue="celery")  # no worker listens: it waits
    with ServerThread(create_web_app(consuming, clock), free_port()) as web:
        samples = scrape(web.base_url)
    assert value(samples, "exact_sync_queue_messages", queue="celery") == 1
    assert value(samples, "exact_sync_queue_messages", queue=ops_settings.celery_queue) == 0
