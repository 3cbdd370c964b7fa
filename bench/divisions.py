"""Divisions in parallel: one connection's 4 divisions at a tight minutely limit, synced by a real Celery worker
with 1 process, then (4 other divisions, fresh budgets) with 2 processes. Goal: 2 processes take at most 0.6x the
time of 1 (each division has its own minutely budget, so the divisions' waits for budget overlap).

`python -m bench.divisions [--minutely-limit 20] [--calls-per-division 30] [--output FILE]` (about 5 minutes at
the defaults: the sandbox enforces its limit per real minute). Needs DATABASE_URL's server (it creates and drops a
database next to it) and REDIS_URL.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy.engine import make_url

from bench.environment import delete_redis_keys, drop_database, print_report, register_divisions, worker_values
from models.migrate import upgrade_to_head
from syncs.core.crypto import TokenCipher
from syncs.core.db import session_factory
from syncs.core.settings import Settings
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from syncs.tokens.store import TokenStore
from worker.app import SYNC_TASK, create_app

TARGET = 0.6
PAGE_SIZE = 10
ROOT = Path(__file__).resolve().parents[1]


def _divisions(first: int) -> list[int]:
    return [first + n for n in range(4)]


def _timed_run(values: dict[str, Any], name: str, processes: int) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, **{key.upper(): value for key, value in values.items()}}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", values["celery_queue"],
         "--pool", "prefork", "--concurrency", str(processes), "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        app = create_app(Settings(_env_file=None, **values))
        started = time.perf_counter()
        result = app.send_task(SYNC_TASK, args=[name], queue=values["celery_queue"])
        summary = result.get(timeout=1800)
        return time.perf_counter() - started, summary
    finally:
        worker.terminate()
        worker.wait(30)


def run(minutely_limit: int, calls_per_division: int) -> str:
    base = Settings()
    database = f"exact_sync_divisions_bench_{uuid.uuid4().hex[:6]}"
    database_url = make_url(base.database_url).set(database=database).render_as_string(hide_password=False)
    one, two = _divisions(200001), _divisions(300001)
    config = SandboxConfig(
        page_size=PAGE_SIZE,
        minutely_limit=minutely_limit,
        daily_limit=None,
        seed=False,
        extra_divisions=tuple((code, f"Bench {code}") for code in one + two),
    )
    state = SandboxState(config)
    accounts = max(1, calls_per_division - 2) * PAGE_SIZE  # the invoice and deleted streams add a call each
    for division in one + two:
        state.generate(division, accounts=accounts, invoices=0, lines_per_invoice=1)
    prefix = f"exact-sync-divisions-bench-{uuid.uuid4().hex[:6]}"
    timings: dict[int, tuple[float, dict[str, Any]]] = {}
    with SandboxServer(state) as sandbox:
        values = worker_values(base, database_url, prefix, sandbox.base_url, config)
        upgrade_to_head(database_url)
        try:
            sessions = session_factory(database_url)
            store = TokenStore(sessions, TokenCipher(values["token_encryption_key"]))
            register_divisions(sessions, store, state, "one-process", one)
            register_divisions(sessions, store, state, "two-processes", two)
            timings[1] = _timed_run(values, "one-process", 1)
            timings[2] = _timed_run(values, "two-processes", 2)
        finally:
            drop_database(database_url)
            delete_redis_keys(Redis.from_url(base.redis_url), prefix)
    ratio = timings[2][0] / timings[1][0]
    lines = [
        f"divisions in parallel: 4 divisions x {calls_per_division} calls, minutely limit {minutely_limit} per "
        f"division (sandbox, real minutes), page size {PAGE_SIZE}, one real Celery worker (prefork)",
    ]
    for processes, (seconds, summary) in sorted(timings.items()):
        lines.append(
            f"  {processes} process{'es' if processes > 1 else ''}: {seconds:6.1f} s, {summary['status']}, "
            f"{summary['inserted']} rows, {summary['api_calls']} API calls, divisions {summary['divisions']}"
        )
    lines.append(
        f"  2 processes / 1 process: {ratio:.2f}x (target <= {TARGET}x): {'met' if ratio <= TARGET else 'MISSED'}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--minutely-limit", type=int, default=20, help="calls per minute and division (default 20)")
    parser.add_argument("--calls-per-division", type=int, default=30, help="API calls each division needs (default 30)")
    parser.add_argument("--output", type=Path, help="also write the report here")
    options = parser.parse_args(argv)
    return print_report(run(options.minutely_limit, options.calls_per_division), options.output)


if __name__ == "__main__":
    sys.exit(main())
