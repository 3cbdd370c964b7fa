"""How much of Exact's minutely budget a backfill uses, and how many 429s it draws, with the shared rate budget.

`python -m bench.rate_budget [--pages 150] [--minutely-limit 60] [--page-size 20] [--output FILE]`
Quick check: `python -m bench.rate_budget --pages 30 --minutely-limit 20` (about a minute and a half).

An in-process sandbox on the real clock enforces `--minutely-limit` calls per division and minute (Exact's is
60). Two divisions hold data for `--pages / 2` pages each; two worker processes each backfill a connection
covering both divisions, in opposite order, so each division serves about `--pages` requests and both
processes spend the same division budgets through Redis. Reported per division: the calls in each whole minute
it was busy (the first and last, partial, minutes left out) as a share of the limit (target >= 90%), and the
429s the sandbox's budget sent (target 0). Needs DATABASE_URL's server (it creates and drops a database next to
it) and REDIS_URL.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import uuid
from collections import Counter
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
from syncs.sandbox.ratelimit import Verdict, minute_window
from syncs.tokens.store import TokenStore

DIVISIONS = (124132, 124133)


class CountingState(SandboxState):
    """The sandbox, also counting the calls its budget let through per (division, minute)."""

    def __init__(self, config: SandboxConfig) -> None:
        super().__init__(config)
        self.per_minute: Counter[tuple[int, int]] = Counter()

    def spend(self, division: int) -> Verdict:
        verdict = super().spend(division)
        if verdict.allowed:
            self.per_minute[(division, minute_window(self.clock.now()))] += 1
        return verdict


def _worker(values: dict[str, Any], name: str, out: Any) -> None:
    from worker.runs import execute_sync

    started = time.time()
    outcome = execute_sync(Settings(_env_file=None, **values), name, entities=["accounts"], trigger="bench")
    out.put((name, outcome.status, outcome.api_calls, round(time.time() - started, 1)))


def run(pages: int, minutely_limit: int, page_size: int) -> str:
    base = Settings()
    database = f"exact_sync_rate_bench_{uuid.uuid4().hex[:6]}"
    database_url = make_url(base.database_url).set(database=database).render_as_string(hide_password=False)
    config = SandboxConfig(page_size=page_size, minutely_limit=minutely_limit, daily_limit=None, seed=False)
    state = CountingState(config)
    per_backfill = max(1, pages // 2 - 2)  # account pages; the invoice and deleted streams add one page each
    for division in DIVISIONS:
        state.generate(division, accounts=per_backfill * page_size, invoices=0, lines_per_invoice=1)
    lines = []
    with SandboxServer(state) as sandbox:
        values = worker_values(
            base, database_url, f"exact-sync-rate-bench-{uuid.uuid4().hex[:6]}", sandbox.base_url, config
        )
        upgrade_to_head(database_url)
        try:
            sessions = session_factory(database_url)
            store = TokenStore(sessions, TokenCipher(values["token_encryption_key"]))
            names = []
            for number, first in enumerate((DIVISIONS, DIVISIONS[::-1])):
                register_divisions(sessions, store, state, f"bench-{number}", first)
                names.append(f"bench-{number}")
            context = multiprocessing.get_context("spawn")
            out = context.Queue()
            started = time.time()
            processes = [context.Process(target=_worker, args=(values, name, out)) for name in names]
            for process in processes:
                process.start()
            results = [out.get(timeout=3600) for _ in processes]
            for process in processes:
                process.join(60)
            elapsed = time.time() - started
        finally:
            drop_database(database_url)
            delete_redis_keys(Redis.from_url(base.redis_url), values["redis_key_prefix"])
    counters = state.counters
    lines.append(f"rate budget bench: {pages} pages per division wanted, page size {page_size}, "
                 f"minutely limit {minutely_limit}, 2 worker processes, {elapsed:.0f} s")  # fmt: skip
    for name, status, calls, seconds in sorted(results):
        lines.append(f"  {name}: {status}, {calls} API calls, {seconds} s")
    for division in DIVISIONS:
        windows = sorted((w, n) for (d, w), n in state.per_minute.items() if d == division)
        full = windows[1:-1] if len(windows) > 2 else windows
        share = sum(n for _, n in full) / (minutely_limit * len(full)) if full else 0.0
        total = sum(n for _, n in windows)
        four29 = counters.http_429.get(division, 0)
        lines.append(
            f"  division {division}: {total} calls in {len(windows)} minutes; per minute {[n for _, n in windows]}; "
            f"share of the minutely budget used in whole minutes {share:.0%} (target >= 90%): "
            f"{'MET' if share >= 0.9 else 'NOT MET'}; 429s {four29} (target 0): {'MET' if four29 == 0 else 'NOT MET'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=150, help="requests each division serves (default 150)")
    parser.add_argument("--minutely-limit", type=int, default=60, help="the sandbox's calls per minute and division")
    parser.add_argument("--page-size", type=int, default=20, help="rows per page")
    parser.add_argument("--output", type=Path, help="also write the report here")
    options = parser.parse_args(argv)
    return print_report(run(options.pages, options.minutely_limit, options.page_size), options.output)


if __name__ == "__main__":
    sys.exit(main())
