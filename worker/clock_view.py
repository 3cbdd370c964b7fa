"""Exact's clock against ours, as `status` and `doctor` show it: one judgement of the same estimate.

The estimate (syncs/exact/exact_time.py) comes from the `Date` header of Exact's answers and is kept in Redis per
Exact host and machine; the workers write it, `doctor` adds its own measurement, `status` reads them all.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.exceptions import RedisError
from rich.console import Group, RenderableType
from rich.table import Table

from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.settings import Settings
from syncs.exact.exact_time import ClockOffsets, OffsetBounds

WARN, FAIL = "WARN", "FAIL"


def offset_problem(bounds: OffsetBounds, settings: Settings) -> tuple[str, str] | None:
    """(level, what to do) when the offset is surely beyond CLOCK_OFFSET_WARN_SECONDS, else None.

    Token windows are kept in Exact's time whatever the offset, but rate-limit resets and stored timestamps are
    read against our clock: beyond Exact's refresh window that is a FAIL."""
    if bounds.beyond(settings.token_refresh_window_seconds):
        return FAIL, "synchronise this machine's clock (NTP): rate-limit resets and timestamps are read against it"
    if bounds.beyond(settings.clock_offset_warn_seconds):
        limit = f"{settings.clock_offset_warn_seconds:g}"
        return WARN, f"synchronise this machine's clock (NTP): more than {limit} s off Exact's"
    return None


def clock_status(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> RenderableType:
    """What `status` prints about Exact's clock: each host and machine's offset, and a warning when it is large."""
    client: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url)
    try:
        measured = ClockOffsets(client, settings.redis_key_prefix).every()
    except (RedisError, OSError) as exc:
        return f"[yellow]clock offsets unavailable: {exc}[/]"
    finally:
        client.close()
    if not measured:
        return ""
    table = Table(title="Exact's clock against ours (from the Date header of Exact's answers)")
    for column in ("Exact host", "machine", "offset", "measured"):
        table.add_column(column, overflow="fold")
    warnings: list[Any] = []
    for host, machine, bounds in measured:
        stale = clock.now() - bounds.measured_at > settings.clock_offset_max_age_seconds
        table.add_row(
            host,
            machine,
            bounds.describe().removeprefix("clock offset "),
            f"{to_datetime(bounds.measured_at):%Y-%m-%d %H:%M:%S} UTC" + (" (stale: not used)" if stale else ""),
        )
        problem = None if stale else offset_problem(bounds, settings)
        if problem is not None:
            level, fix = problem
            style = "red" if level == FAIL else "yellow"
            warnings.append(f"[{style}]warning: {machine}'s {bounds.describe()} against {host}: {fix}[/]")
    return Group(table, *warnings)
