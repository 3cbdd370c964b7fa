"""Webhooks benchmark: what an idle division costs a day with and without Exact webhooks, and how long a change in
Exact takes to reach Postgres through a webhook.

`python -m bench.webhooks [--debounce 30] [--samples 5] [--output FILE]` (about a minute plus `--samples` times
the debounce). Needs DATABASE_URL's server (it creates and drops two databases next to it) and REDIS_URL.

1. Calls per idle division per day (bench.idle_cost, the method of tests/faults/test_budgets.py): an in-process
   sandbox and runs on a hand-moved clock; one connection syncing both sandbox divisions with every default
   entity on. After its first sync: a day of beat's 15-minute runs without webhook subscriptions, then every
   synced topic subscribed in every division (through the sandbox's WebhookSubscriptions API) and another day,
   each run planned as beat plans it. Goal: at most 300 calls per division with webhooks.
2. Webhook-to-row latency on the real clock: `exact-sync serve` and a Celery worker as subprocesses, the sandbox
   subscribed to serve's webhook path for `Accounts`. Each sample renames an account in the sandbox and times
   it until the row in Postgres carries the new name: the sandbox's signed delivery, serve's check and record,
   the debounce (WEBHOOK_DEBOUNCE_SECONDS = --debounce), the worker's targeted sync. Goal: within 60 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bench.environment import delete_redis_keys, drop_database, print_report, register_divisions, worker_values
from bench.idle_cost import beat_run, calls_of_a_day
from models import Account, WebhookEvent
from models.migrate import upgrade_to_head
from syncs.core.clock import ManualClock
from syncs.core.crypto import TokenCipher
from syncs.core.db import session_factory
from syncs.core.settings import Settings
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from syncs.sandbox.seed import FIRST_DIVISION, SECOND_DIVISION
from syncs.tokens.store import TokenStore
from syncs.webhooks.events import OPEN
from worker.runs import execute_sync
from worker.subscribing import subscribe_connection

NAME = "bench-webhooks"
DIVISIONS = (FIRST_DIVISION, SECOND_DIVISION)
RUNS_PER_DAY = 24 * 4
IDLE_GOAL = 300
LATENCY_GOAL = 60.0
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@contextmanager
def bench_database(base: Settings, sandbox: SandboxServer, **extra: Any) -> Iterator[Settings]:
    """A fresh database with one connection (`NAME`, both divisions) aimed at `sandbox`; dropped afterwards."""
    prefix = f"exact-sync-webhook-bench-{uuid.uuid4().hex[:6]}"
    database_url = make_url(base.database_url).set(database=prefix.replace("-", "_")).render_as_string(False)
    values = {**worker_values(base, database_url, prefix, sandbox.base_url, sandbox.state.config), **extra}
    settings = Settings(_env_file=None, **values)
    upgrade_to_head(database_url)
    try:
        sessions = session_factory(database_url)
        store = TokenStore(sessions, TokenCipher(values["token_encryption_key"]))
        register_divisions(sessions, store, sandbox.state, NAME, DIVISIONS)
        yield settings
    finally:
        drop_database(database_url)
        delete_redis_keys(Redis.from_url(base.redis_url), prefix)


def idle_calls(base: Settings) -> list[str]:
    clock = ManualClock(time.time())
    state = SandboxState(SandboxConfig(minutely_limit=None, daily_limit=None), clock=clock)
    with SandboxServer(state) as sandbox, bench_database(base, sandbox) as settings:
        sessions = session_factory(settings.database_url)
        client: Redis[bytes] = Redis.from_url(settings.redis_url)
        execute_sync(settings, NAME, clock=clock)
        without = calls_of_a_day(state, clock, RUNS_PER_DAY, lambda: beat_run(settings, sessions, client, clock, NAME))
        # Nothing listens there: the validation POSTs fail, which does not matter for counting polls.
        subscribe_connection(settings, NAME, None, "http://127.0.0.1:9/webhooks/exact", clock)
        with_webhooks = calls_of_a_day(
            state, clock, RUNS_PER_DAY, lambda: beat_run(settings, sessions, client, clock, NAME)
        )
        client.close()
    lines = [f"calls per idle division per day ({RUNS_PER_DAY} beat runs, every default entity on):"]
    for division in DIVISIONS:
        found = with_webhooks[division]
        lines.append(
            f"  division {division}: without webhooks {without[division]}, with webhooks for every topic {found} "
            f"(goal <= {IDLE_GOAL}): {'MET' if found <= IDLE_GOAL else 'NOT MET'}"
        )
    lines.append("  (the current division also pays the daily division check)")
    return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: Sequence[str], settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, **{key.upper(): _plain(value) for key, value in settings.model_dump().items()}}
    env = {key: value for key, value in env.items() if value != "None"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _plain(value: Any) -> str:
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.02)


def _renamed(sessions: sessionmaker[Session], account_id: str, name: str) -> bool:
    with sessions() as session:
        columns = Account.__table__.c
        return session.scalar(select(columns.name).where(columns.id == uuid.UUID(account_id))) == name


def _settled(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return not session.scalar(select(func.count()).where(WebhookEvent.status.in_(OPEN)))


def latency(base: Settings, debounce: float, samples: int) -> list[str]:
    state = SandboxState(SandboxConfig(minutely_limit=None, daily_limit=None))
    port = _free_port()
    extra = {"exact_webhook_secret": state.config.webhook_secret, "webhook_debounce_seconds": debounce}
    with SandboxServer(state) as sandbox, bench_database(base, sandbox, **extra) as settings:
        sessions = session_factory(settings.database_url)
        execute_sync(settings, NAME)
        serve = _start([str(BIN / "exact-sync"), "serve", "--port", str(port)], settings)
        worker = _start(
            [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", settings.celery_queue,
             "--pool", "solo", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"{settings.celery_queue}@%h"],
            settings,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(lambda: _answers(f"{url}/health"), 30, "serve starting")
            subscribe_connection(settings, NAME, ["Accounts"], f"{url}{settings.webhook_path}")
            account = state.accounts(FIRST_DIVISION)[0]["ID"]
            found = []
            for sample in range(samples + 1):  # the first warms the worker up and is not counted
                new_name = f"Latency sample {sample}"
                started = time.perf_counter()
                state.update_account(FIRST_DIVISION, account, Name=new_name)
                _wait(partial(_renamed, sessions, account, new_name), debounce + 120, "the change reaching Postgres")
                if sample:
                    found.append(time.perf_counter() - started)
                _wait(lambda: _settled(sessions), 60, "the webhook events settling")
        finally:
            for process in (serve, worker):
                process.terminate()
                process.wait(30)
    median = statistics.median(found)
    return [
        f"webhook-to-row latency (sandbox change -> signed webhook -> serve -> debounce {debounce:g} s -> Celery "
        f"worker -> row in Postgres), {samples} samples:",
        f"  min {min(found):.2f} s, median {median:.2f} s, max {max(found):.2f} s "
        f"(goal <= {LATENCY_GOAL:g} s): {'MET' if max(found) <= LATENCY_GOAL else 'NOT MET'}",
    ]


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--debounce", type=float, default=Settings().webhook_debounce_seconds, help="WEBHOOK_DEBOUNCE_SECONDS (30)"
    )
    parser.add_argument("--samples", type=int, default=5, help="latency samples (default 5)")
    parser.add_argument("--output", type=Path, help="also write the report here")
    options = parser.parse_args(argv)
    base = Settings()
    return print_report("\n".join(idle_calls(base) + latency(base, options.debounce, options.samples)), options.output)


if __name__ == "__main__":
    sys.exit(main())
