"""Rate and error budgets against a misbehaving sandbox, all on a FakeClock (minutes of waiting cost nothing)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from redis import Redis
from rich.console import Console
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bench.idle_cost import beat_run, calls_of_a_day
from models import Connection, SyncRun
from syncs.core.clock import to_datetime
from syncs.core.errors import ErrorBudgetExhaustedError, ExactRequestError, ExactSyncError
from syncs.core.settings import Settings
from syncs.engine.cadence import CADENCE_INTERVALS
from syncs.entities.declaration import Cadence
from syncs.entities.registry import ENTITIES
from syncs.exact.client import open_client
from syncs.limits.errorbudget import ErrorBudget
from syncs.limits.ratelimit import RateGate
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from syncs.webhooks.topics import synced_topics
from tests.client.test_ratelimit import minutely
from tests.faults.conftest import assert_equal_to_source, register
from tests.support.cli import aimed_at
from tests.support.clock import FakeClock
from tests.worker.test_polling import subscribe_everything
from worker.budget_view import budget_status, low_budget_warning
from worker.polling import beat_plan, safety_sweep
from worker.run_records import RunOutcome
from worker.runs import execute_sync
from worker.scheduler import Due, daily_budget_deferral, schedule_due_connections

DIV = 124132


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_030.0)


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxState(SandboxConfig(page_size=10, minutely_limit=20), clock=clock))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_settings(settings: Settings, sandbox: SandboxServer) -> Settings:
    return aimed_at(settings, sandbox)


def sync_until_done(settings: Settings, clock: FakeClock, attempts: int = 4) -> RunOutcome:
    """Runs as Celery would retry them: a RetriableError ends one attempt, the next resumes from the cursors."""
    for _ in range(attempts - 1):
        try:
            return execute_sync(settings, "acme", clock=clock)
        except ExactSyncError as exc:
            assert not isinstance(exc, ErrorBudgetExhaustedError | ExactRequestError), exc
            clock.advance(30)
    return execute_sync(settings, "acme", clock=clock)


def register_in(
    db: sessionmaker[Session], settings: Settings, state: SandboxState, division: int = DIV, name: str = "acme"
) -> int:
    """`register`, with `division` as the connection's current division."""
    connection_id = register(db, settings, state, name)
    with db.begin() as session:
        session.execute(update(Connection).where(Connection.id == connection_id).values(current_division=division))
    return connection_id


def exhaust_error_budget(
    redis_client: Redis[bytes], settings: Settings, clock: FakeClock, connection_id: int, status: int
) -> None:
    """Eight `status` errors on the accounts endpoint of DIV within the hour: the budget stops it."""
    errors = ErrorBudget(redis_client, settings.redis_key_prefix, clock, connection_id)
    for _ in range(8):
        errors.record(f"{DIV}/sync/crm/accounts", status)


def test_5xx_and_429_bursts_end_equal_to_the_source_without_429s_from_the_budget(
    fake_settings: Settings, db: sessionmaker[Session], sandbox: SandboxServer, clock: FakeClock
) -> None:
    state = sandbox.state
    for division in state.divisions:
        state.generate(division, accounts=300, invoices=60, lines_per_invoice=2)
    register(db, fake_settings, state)
    state.configure(error_rate=0.1, burst_429=3, fault_seed=7)
    first = sync_until_done(fake_settings, clock)
    state.configure(burst_429=2, burst_429_headers=False)  # bursts without any rate headers
    state.update_account(DIV, state.accounts(DIV)[0]["ID"], Name="Renamed during the faults")
    second = sync_until_done(fake_settings, clock)
    counters = state.counters
    for division in first.divisions:
        assert_equal_to_source(db, state, division)
    assert second.status == "succeeded"
    assert sum(counters.http_5xx.values()) >= 5, counters.http_5xx
    assert sum(counters.burst_429_sent.values()) >= 5, counters.burst_429_sent
    # Hundreds of calls over many minutes at 20 a minute, and at most one 429 per window from the budget.
    assert sum(counters.api_calls.values()) > 100
    assert all(n <= 1 for windows in counters.http_429_per_window.values() for n in windows.values()), counters
    assert counters.old_refresh_token_used == 0 and counters.http_401 == 0, counters


def idle_day_calls(runs_per_day: int) -> int:
    """The documented idle cost of one division and day (README, "Idle cost")."""
    per_cadence = Counter(spec.cadence for spec in ENTITIES.values())
    return (
        (per_cadence[Cadence.TRANSACTIONAL] + 1) * runs_per_day  # + the deletions stream, every run
        + per_cadence[Cadence.MASTER] * (24 // 4)
        + per_cadence[Cadence.REFERENCE]  # one page each while a list has at most 60 rows
        + 2  # the daily division check: current/Me and system/Divisions
    )


def test_an_idle_day_with_every_entity_stays_within_1000_calls_per_division(
    fake_settings: Settings, db: sessionmaker[Session], sandbox: SandboxServer, clock: FakeClock
) -> None:
    """Every default entity on: a day of hourly runs against the sandbox costs exactly what the arithmetic says,
    and the same arithmetic at 15-minute runs stays within 1,000 calls per division."""
    register(db, fake_settings, sandbox.state)
    first = execute_sync(fake_settings, "acme", clock=clock)
    assert first.inserted > 0
    # The access token expires in between: refreshes are not API calls.
    calls = calls_of_a_day(sandbox.state, clock, 24, lambda: execute_sync(fake_settings, "acme", clock=clock))
    for division in first.divisions:  # the division check's two calls go to the current division only
        assert idle_day_calls(24) - 2 <= calls[division] <= idle_day_calls(24), (division, calls)
    assert idle_day_calls(24 * 4) <= 1000


def idle_day_calls_with_webhooks(runs_per_day: int, sweep: timedelta) -> int:
    """The documented idle cost of one division and day with healthy webhooks for every topic (README, "Exact
    Online webhooks"): entities with a topic are read at most every `sweep`, the others keep their cadence."""
    day = timedelta(days=1)
    run = day / runs_per_day
    total = runs_per_day + 2  # the deletions stream every run; the daily division check
    for spec in ENTITIES.values():
        interval = CADENCE_INTERVALS[spec.cadence] or run
        if spec.entity.topic is not None:
            interval = max(interval, sweep)
        total += day // interval
    return total


def test_an_idle_day_with_webhooks_for_every_topic_stays_within_300_calls_per_division(
    fake_settings: Settings,
    sandbox: SandboxServer,
    clock: FakeClock,
    db: sessionmaker[Session],
    redis_client: Redis[bytes],
) -> None:
    """Every default entity on and every synced topic subscribed in every division: a day of beat's 15-minute runs
    (planned as beat plans them) costs what the arithmetic says, at most 300 calls per division."""
    connection_id = register(db, fake_settings, sandbox.state)
    first = execute_sync(fake_settings, "acme", clock=clock)
    subscribe_everything(db, connection_id, synced_topics())

    def planned_run() -> RunOutcome | None:
        plan = beat_plan(fake_settings, db, redis_client, "acme", to_datetime(clock.now()))
        assert not plan.idle and len(plan.covered) == sum(1 for s in ENTITIES.values() if s.entity.topic)
        return beat_run(fake_settings, db, redis_client, clock, "acme")

    calls = calls_of_a_day(sandbox.state, clock, 24 * 4, planned_run)
    expected = idle_day_calls_with_webhooks(24 * 4, safety_sweep(fake_settings))
    for division in first.divisions:  # the division check's two calls go to the current division only
        assert expected - 2 <= calls[division] <= expected, (division, calls)
    assert expected <= 300


def test_the_error_budget_stops_an_endpoint_before_exacts_limit(
    fake_settings: Settings,
    db: sessionmaker[Session],
    sandbox: SandboxServer,
    clock: FakeClock,
    redis_client: Redis[bytes],
) -> None:
    connection_id = register(db, fake_settings, sandbox.state)
    params = {"$filter": "Timestamp gt 0L", "$select": "ID"}
    with open_client(fake_settings, connection_id, "nl", sessions=db, redis=redis_client, clock=clock) as exact:
        for _ in range(8):
            with pytest.raises(ExactRequestError):  # 404, never retried
                list(exact.pages(DIV, "sync/No/Such", params))
        with pytest.raises(ErrorBudgetExhaustedError, match="sync/no/such") as stopped:
            list(exact.pages(DIV, "sync/No/Such", params))
        assert exact.api_calls == 8
        list(exact.pages(DIV, "sync/CRM/Accounts", params))  # other endpoints go on
        assert stopped.value.retry_at == pytest.approx(clock.now() + 3600, abs=5)
        counters = sandbox.state.counters
        assert counters.http_4xx == {DIV: 8} and counters.error_limit_blocks == {}
        clock.advance(3601)  # the hour has passed: calls resume
        with pytest.raises(ExactRequestError):
            list(exact.pages(DIV, "sync/No/Such", params))


def test_an_exhausted_error_budget_fails_the_run_and_shows_why(
    fake_settings: Settings,
    db: sessionmaker[Session],
    sandbox: SandboxServer,
    clock: FakeClock,
    redis_client: Redis[bytes],
) -> None:
    connection_id = register_in(db, fake_settings, sandbox.state)
    exhaust_error_budget(redis_client, fake_settings, clock, connection_id, 400)
    with pytest.raises(ErrorBudgetExhaustedError):
        execute_sync(fake_settings, "acme", entities=["accounts"], clock=clock)
    with db() as session:
        run = session.scalars(select(SyncRun)).one()
        assert run.status == "failed" and run.error is not None
        assert run.error.startswith("ErrorBudgetExhaustedError: stopped calling 124132/sync/crm/accounts")
        acme = session.scalars(select(Connection)).one()
        assert acme.next_sync_at is not None and acme.next_sync_at >= to_datetime(clock.now() + 3000)


def test_beat_defers_a_connection_whose_daily_budget_runs_low(
    fake_settings: Settings,
    db: sessionmaker[Session],
    sandbox: SandboxServer,
    clock: FakeClock,
    redis_client: Redis[bytes],
) -> None:
    low_id = register_in(db, fake_settings, sandbox.state, DIV, "low")
    register_in(db, fake_settings, sandbox.state, DIV + 1, "fine")
    reset = clock.now() + 3 * 3600
    gate = RateGate(redis_client, fake_settings.redis_key_prefix, clock)
    daily = {"X-RateLimit-Limit": "5000", "X-RateLimit-Reset": str(int(reset * 1000))}
    gate.observe(str(DIV), 200, {**daily, "X-RateLimit-Remaining": "499"})
    gate.observe(str(DIV + 1), 200, {**daily, "X-RateLimit-Remaining": "500"})
    sent: list[str] = []
    defer = daily_budget_deferral(db, redis_client, fake_settings, clock)

    def send(batch: Sequence[Due]) -> None:
        sent.extend(due.name for due in batch)

    assert schedule_due_connections(db, send, clock, defer) == ["fine"]
    with db() as session:
        low = session.get_one(Connection, low_id)
        margin = timedelta(seconds=fake_settings.daily_budget_defer_margin_seconds)
        assert low.next_sync_at == to_datetime(reset) + margin
    clock.advance(3 * 3600 + fake_settings.daily_budget_defer_margin_seconds)  # after the reset: due and sent
    assert schedule_due_connections(db, send, clock, defer) == ["fine", "low"]


def test_status_shows_budgets_and_stopped_endpoints_and_manual_runs_warn(
    fake_settings: Settings,
    db: sessionmaker[Session],
    sandbox: SandboxServer,
    clock: FakeClock,
    redis_client: Redis[bytes],
) -> None:
    connection_id = register_in(db, fake_settings, sandbox.state)
    assert low_budget_warning(fake_settings, "acme", clock) is None
    reset = clock.now() + 3600
    gate = RateGate(redis_client, fake_settings.redis_key_prefix, clock)
    gate.observe(str(DIV), 200, {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "120",
                                 "X-RateLimit-Reset": str(int(reset * 1000)), **minutely(42)})  # fmt: skip
    exhaust_error_budget(redis_client, fake_settings, clock, connection_id, 404)
    console = Console(record=True, width=250)
    with db() as session:
        connections = [session.get_one(Connection, connection_id)]
    console.print(budget_status(fake_settings, connections, clock))
    text = console.export_text()
    assert "42 of 60" in text and "120 of 5000" in text
    assert "124132/sync/crm/accounts" in text and "8 errors in the last hour: stopped until" in text
    warning = low_budget_warning(fake_settings, "acme", clock)
    assert warning is not None and "120 of 5000 daily API calls left" in warning and "runs anyway" in warning
    outcome = execute_sync(fake_settings, "acme", entities=["sales_invoices"], clock=clock)  # still runs
    assert outcome.status == "succeeded"
