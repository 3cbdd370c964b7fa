"""The budgets in the CLI: a table for `status`, a warning for manual `sync`/`run` when the day's budget is low."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.exceptions import RedisError
from rich.console import RenderableType
from rich.table import Table

from models import Connection
from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.db import session_factory
from syncs.core.errors import ConfigurationError, LockUnavailableError
from syncs.core.settings import Settings
from syncs.lifecycle.connections import get_connection_by_name
from syncs.limits.budgets import (
    BudgetReport,
    budget_report,
    low_budget_message,
    low_daily_budget,
    synced_divisions,
    utc,
)


def budget_reports(
    settings: Settings, connections: Sequence[Connection], clock: Clock = SYSTEM_CLOCK
) -> list[tuple[str, BudgetReport]] | str:
    """Each connection's budgets, or why they cannot be read (Redis down)."""
    client: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url)
    try:
        with session_factory(settings.database_url)() as session:
            return [(c.name, budget_report(client, settings, clock, session, c)) for c in connections]
    except (LockUnavailableError, RedisError, OSError) as exc:
        return f"budgets unavailable: {exc}"
    finally:
        client.close()


def budget_status(settings: Settings, connections: Sequence[Connection], clock: Clock = SYSTEM_CLOCK) -> RenderableType:
    """What `exact-sync status` prints below the connections it showed: the budgets table, or why there is none."""
    reports = budget_reports(settings, connections, clock)
    if isinstance(reports, str):
        return f"[yellow]{reports}[/]"
    return budgets_table(reports, clock) if reports else ""


def budgets_table(reports: list[tuple[str, BudgetReport]], clock: Clock = SYSTEM_CLOCK) -> Table:
    table = Table(title="API budgets (per division, shared by all workers; errors per endpoint in the last hour)")
    for column in ("connection", "division", "minutely left", "minutely reset", "daily left", "daily reset", "note"):
        table.add_column(column, overflow="fold")
    now = clock.now()
    for name, report in reports:
        for budget in report.divisions:
            s = budget.state
            note = f"429: waiting until {utc(s.blocked_until)}" if s.blocked_until and s.blocked_until > now else ""
            table.add_row(
                name,
                str(budget.division),
                _left(s.minutely_remaining, s.minutely_limit),
                utc(s.minutely_reset) if s.minutely_reset else "-",
                _left(s.daily_remaining, s.daily_limit),
                utc(s.daily_reset) if s.daily_reset else "-",
                note,
            )
        for errors in report.errors:
            state = f"[red]stopped until {utc(errors.blocked_until)}[/]" if errors.blocked_until else "calling"
            table.add_row(name, errors.endpoint, "", "", "", "", f"{errors.errors} errors in the last hour: {state}")
    return table


def low_budget_warning(settings: Settings, name: str, clock: Clock = SYSTEM_CLOCK) -> str | None:
    """A warning for a manual sync when a division's daily budget is low (beat would defer it); None otherwise."""
    client: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url)
    try:
        with session_factory(settings.database_url)() as session:
            divisions = synced_divisions(session, get_connection_by_name(session, name))
        low = low_daily_budget(client, settings, clock, divisions)
    except (ConfigurationError, LockUnavailableError, RedisError, OSError):  # the run itself will say why
        return None
    finally:
        client.close()
    if low is None:
        return None
    return f"warning: {low_budget_message(low)}; scheduled syncs are deferred until the reset, this one runs anyway"


def _left(remaining: int | None, limit: int | None) -> str:
    if remaining is None:
        return "unknown"
    return f"{remaining} of {limit}" if limit else str(remaining)
