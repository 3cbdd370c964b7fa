"""What the rate and error budgets mean for a connection: beat's deferral, the CLI's warning, `status`.

Budgets are per division (company) in Redis (syncs.limits.ratelimit), errors per connection and endpoint
(syncs.limits.errorbudget); a connection syncs its enabled, available divisions, or its current one before the first
run has listed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import select
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
    codes = session.scalars(
        select(Division.code)
        .where(Division.connection_id == connection.id, Division.sync_enabled, Division.available)
        .order_by(Division.code)
    ).all()
    if codes:
        return list(codes)
    return [connection.current_division] if connection.current_division is not None else []


def _gate(client: redis.Redis[Any], settings: Settings, clock: Clock) -> RateGate:
    return RateGate(client, settings.redis_key_prefix, clock)


def low_daily_budget(
    client: redis.Redis[Any], settings: Settings, clock: Clock, divisions: list[int]
) -> DivisionBudget | None:
    """The first division whose daily budget is below `daily_budget_low_fraction` of its limit, if any."""
    gate, now = _gate(client, settings, clock), clock.now()
    for division in divisions:
        state = gate.status(str(division))
        if state.daily_low(now, settings.daily_budget_low_fraction):
            return DivisionBudget(division, state)
    return None


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
