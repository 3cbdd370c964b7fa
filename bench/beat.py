"""Beat at scale: one tick that finds 10,000 connections due in a 100,000-row connections table.

`python -m bench.beat [--connections 100000] [--due 10000]` (a few seconds). In a fresh database next to
DATABASE_URL's: the claim's query plan, then one `schedule_due_connections` with beat's own budget check and send
(`send_scheduled`: which connections have webhook subscriptions, then bulk publishing) to a scratch queue in
REDIS_URL; every due connection must be sent once, and a second tick sends
nothing. For comparison, `send_task` one message at a time on a sample. Goal: the tick under 1 s.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Sequence

from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.environment import delete_redis_keys, drop_database
from models.migrate import upgrade_to_head
from syncs.core.clock import SYSTEM_CLOCK, to_datetime
from syncs.core.db import session_factory
from syncs.core.settings import Settings
from worker.app import SYNC_TASK, create_app
from worker.scheduler import CLAIM_DUE, Due, daily_budget_deferral, schedule_due_connections, send_scheduled

TARGET_SECONDS = 1.0
SAMPLE = 200


def _fill(database_url: str, rows: int, due: int) -> None:
    """`due` connections due now; the others active but due later, paused, or inactive and long overdue."""
    sessions = session_factory(database_url)
    with sessions.begin() as session:
        session.execute(
            text(
                "INSERT INTO connections (name, region, status, paused, sync_interval_minutes, next_sync_at,"
                " current_division)"
                " SELECT 'bench-' || g, 'nl',"
                "  (CASE WHEN g > :due AND g % 3 = 0 THEN 'reauth_required' ELSE 'active' END)::connection_status,"
                "  g > :due AND g % 3 = 1, 15,"
                "  CASE WHEN g <= :due THEN now() - interval '1 minute'"
                "       WHEN g % 3 = 2 THEN now() + interval '10 minutes' ELSE now() - interval '3 days' END,"
                "  1000000 + g"
                " FROM generate_series(1, :rows) g"
            ),
            {"rows": rows, "due": due},
        )
        session.execute(text("ANALYZE connections"))


def run(rows: int, due: int) -> str:
    base = Settings()
    database = f"exact_sync_beat_bench_{uuid.uuid4().hex[:6]}"
    database_url = make_url(base.database_url).set(database=database).render_as_string(hide_password=False)
    prefix = f"exact-sync-beat-bench-{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(
        update={"database_url": database_url, "redis_key_prefix": prefix, "celery_queue": prefix}
    )
    redis_client: Redis[bytes] = Redis.from_url(settings.redis_url)
    upgrade_to_head(database_url)
    try:
        _fill(database_url, rows, due)
        sessions = session_factory(database_url)
        with sessions() as session:
            now = to_datetime(SYSTEM_CLOCK.now())
            plan = session.scalars(text(f"EXPLAIN {CLAIM_DUE.text}"), {"now": now}).all()
        app = create_app(settings)
        defer = daily_budget_deferral(sessions, redis_client, settings, SYSTEM_CLOCK)

        def send(batch: Sequence[Due]) -> None:  # beat's own: the webhook check, then bulk publishing
            send_scheduled(app, settings, sessions, redis_client, batch)

        started = time.perf_counter()
        sent = schedule_due_connections(sessions, send, SYSTEM_CLOCK, defer)
        seconds = time.perf_counter() - started
        queued = int(redis_client.llen(settings.celery_queue))
        again = schedule_due_connections(sessions, send, SYSTEM_CLOCK, defer)
        queued_after = int(redis_client.llen(settings.celery_queue))

        sample_started = time.perf_counter()
        for number in range(SAMPLE):
            app.send_task(SYNC_TASK, args=[f"sample-{number}"], queue=f"{prefix}-sample", expires=900)
        per_message = (time.perf_counter() - sample_started) / SAMPLE
    finally:
        delete_redis_keys(redis_client, prefix)
        redis_client.close()
        drop_database(database_url)
    met = seconds < TARGET_SECONDS and len(sent) == queued == due and not again and queued_after == queued
    return "\n".join(
        [
            f"beat at scale: {rows:,} connections, {due:,} due (the rest due later, paused or inactive and overdue)",
            "claim plan:",
            *(f"  {line}" for line in plan),
            f"one tick: {len(sent):,} connections claimed, budget-checked and sent in {seconds:.2f} s "
            f"({seconds / max(1, len(sent)) * 1e6:.0f} us each); {queued:,} messages queued; a second tick sent "
            f"{len(again)} (queue {queued_after:,})",
            f"for comparison, send_task one at a time: {per_message * 1000:.2f} ms per message (on {SAMPLE}), "
            f"about {per_message * due:.1f} s for {due:,}",
            f"tick under {TARGET_SECONDS:g} s, each due connection sent once: {'met' if met else 'MISSED'}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=100_000, help="rows in connections (default 100,000)")
    parser.add_argument("--due", type=int, default=10_000, help="connections due (default 10,000)")
    options = parser.parse_args(argv)
    print(run(options.connections, options.due))
    return 0


if __name__ == "__main__":
    sys.exit(main())
