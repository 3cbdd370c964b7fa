"""What the rate and error budgets mean for a connection: beat's deferral, the CLI's warning, `status`.

Budgets are per division (company) in Redis (syncs.limits.ratelimit), errors per connection and endpoint
(syncs.limits.errorbudget); a connection syncs its enabled, available divisions, or its current one before the first
run has listed them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import Integer, any_, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from models import Connection, Division
from syncs.core.clock import Clock
from syncs.core.settings import Settings
from syncs.limits.errorbudget import EndpointErrors, ErrorBudget
from syncs.limits.ratelimit import RateGate, RateState


@dataclass(frozen=True)
class DivisionBudget:
    division: int
    state: RateState


@dataclass(frozen=True)
class BudgetReport:
    """For `status`: each synced division's budgets and the endpoints with errors in the last hour."""

    divisions: list[DivisionBudget]
    errors: list[EndpointErrors]


def synced_divisions(session: Session, connection: Connection) -> list[int]:
    return synced_divisions_of(session, [connection.id]).get(connection.id, [])


def synced_divisions_of(session: Session, connection_ids: Sequence[int]) -> dict[int, list[int]]:
    """Per connection (one query for all): its enabled, available divisions, or its current one before the first
    run has listed them."""
    found: dict[int, list[int]] = {}
    rows = session.execute(
        select(Connection.id, Connection.current_division, Division.code)
        .outerjoin(
            Division,
            (Division.connection_id == Connection.id) & Division.sync_enabled & Division.available,
        )
        .where(Connection.id == any_(literal(list(connection_ids), ARRAY(Integer))))  # one parameter, not 10,000
        .order_by(Connection.id, Division.code)
    )
    current: dict[int, int | None] = {}
    for connection_id, current_division, code in rows:
        current[connection_id] = current_division
        if code is not None:
            found.setdefault(connection_id, []).append(code)
    for connection_id, current_division in current.items():
        if connection_id not in found:
            found[connection_id] = [current_division] if current_division is not None else []
    return found


def _gate(client: redis.Redis[Any], settings: Settings, clock: Clock) -> RateGate:
    return RateGate(client, settings.redis_key_prefix, clock)


def low_daily_budget(
    client: redis.Redis[Any], settings: Settings, clock: Clock, divisions: list[int]
) -> DivisionBudget | None:
    """The first division whose daily budget is below `daily_budget_low_fraction` of its limit, if any."""
    return low_daily_budgets(client, settings, clock, {0: divisions}).get(0)


def low_daily_budgets(
    client: redis.Redis[Any], settings: Settings, clock: Clock, divisions_of: Mapping[int, list[int]]
) -> dict[int, DivisionBudget]:
    """Per key of `divisions_of` (a connection), its first division low on daily budget; one Redis round trip."""
    wanted = sorted({str(d) for divisions in divisions_of.values() for d in divisions})
    states = _gate(client, settings, clock).statuses(wanted) if wanted else {}
    now, fraction = clock.now(), settings.daily_budget_low_fraction
    low: dict[int, DivisionBudget] = {}
    for key, divisions in divisions_of.items():
        for division in divisions:
            state = states[str(division)]
            if state.daily_low(now, fraction):
                low[key] = DivisionBudget(division, state)
                break
    return low


def low_budget_message(low: DivisionBudget) -> str:
    state = low.state
    left = f"{state.daily_remaining} of {state.daily_limit}" if state.daily_limit else str(state.daily_remaining)
    reset = utc(state.daily_reset) if state.daily_reset else "unknown"
    return f"division {low.division} has {left} daily API calls left (resets {reset})"


def budget_report(
    client: redis.Redis[Any], settings: Settings, clock: Clock, session: Session, connection: Connection
) -> BudgetReport:
    gate = _gate(client, settings, clock)
    divisions = [DivisionBudget(d, gate.status(str(d))) for d in synced_divisions(session, connection)]
    errors = ErrorBudget(client, settings.redis_key_prefix, clock, connection.id, settings.error_budget_per_hour)
    return BudgetReport(divisions, errors.all_errors())


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
