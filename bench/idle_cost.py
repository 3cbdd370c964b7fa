"""Counting what an idle division costs a day: beat-planned runs on a hand-moved clock against the sandbox, its
API calls counted per division (tests/faults/test_budgets.py checks the README's arithmetic with it;
bench.webhooks reports it with and without webhooks)."""

from __future__ import annotations

from collections.abc import Callable

import redis
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.clock import ManualClock, to_datetime
from syncs.core.settings import Settings
from syncs.sandbox import SandboxState
from worker.polling import beat_plan
from worker.run_records import RunOutcome
from worker.runs import execute_sync

DAY = 24 * 3600


def beat_run(
    settings: Settings, sessions: sessionmaker[Session], client: redis.Redis[bytes], clock: ManualClock, name: str
) -> RunOutcome | None:
    """What beat would send now for connection `name`, run in process (None: beat would send nothing)."""
    plan = beat_plan(settings, sessions, client, name, to_datetime(clock.now()))
    if plan.idle:
        return None
    return execute_sync(settings, name, trigger="beat", clock=clock, covered=plan.covered)


def calls_of_a_day(
    state: SandboxState, clock: ManualClock, runs: int, run: Callable[[], RunOutcome | None]
) -> dict[int, int]:
    """The sandbox's API calls per division over `runs` runs spread evenly over a day of the clock."""
    before = dict(state.counters.api_calls)
    for _ in range(runs):
        clock.advance(DAY / runs)
        outcome = run()
        if outcome is not None and outcome.status != "succeeded":
            raise RuntimeError(f"an idle run {outcome.status}: {outcome.error}")
    return {d: n - before.get(d, 0) for d, n in state.counters.api_calls.items()}
