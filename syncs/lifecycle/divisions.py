"""Every division a connection's login can use: discovery, availability, and which ones are synced.

Discovery reads `system/Divisions` (with $select) in the user's current division; when Exact refuses that
(some apps lack the scope), it falls back to `current/Me`'s CurrentDivision alone. It runs when a connection is
connected and then inside a run once its last check is older than DIVISIONS_CHECK_HOURS (under the run's
advisory lock, with the run's client and rate budget, so no second scheduler and no concurrent writer).

Consent can cover fewer divisions than the login has. Such a division answers 403 with a Reason header
(NoDivisionAccess, DivisionBlocked): it is marked unavailable and skipped, the other divisions go on. Every
discovery marks the listed divisions available again (a new consent may cover them), so a restricted division
costs one 403 per check (daily), far below Exact's error limit of 10 per hour.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, Division
from syncs.core.clock import Clock, to_datetime
from syncs.core.errors import ConfigurationError, ExactRequestError, MalformedResponseError
from syncs.entities.base import RowReader
from syncs.exact.odata import Page
from syncs.exact.values import to_int

log = structlog.get_logger(__name__)

# 403 Reasons that concern one division only; others (BlockedUser, LicenseExpired, ...) concern the login.
DIVISION_REASONS = frozenset({"NoDivisionAccess", "DivisionBlocked"})
DIVISION_FIELDS = "Code,Description,Status,Current"
ACTIVE = 1  # system/Divisions Status: 0 inactive, 1 active, 2 archived


class DivisionSource(Protocol):
    def current_me(self) -> dict[str, Any]: ...

    def pages(self, division: int, endpoint: str, params: dict[str, str]) -> Iterator[Page]: ...


@dataclass(frozen=True)
class ListedDivision:
    code: int
    description: str | None
    status: int | None
    is_current: bool


def division_unavailable(exc: BaseException) -> bool:
    """True when Exact refused one division (not the whole login) for lack of consent or a block."""
    return isinstance(exc, ExactRequestError) and exc.status_code == 403 and exc.reason in DIVISION_REASONS


def list_divisions(client: DivisionSource, known_current: int | None = None) -> tuple[list[ListedDivision], bool]:
    """(divisions, complete): complete is False when only Me's current division could be learnt.

    With a known current division, system/Divisions is asked there and its `Current` flag names the current one
    (one call); otherwise, or when that fails, current/Me is asked first.
    """
    if known_current is not None:
        try:
            return _from_system_divisions(client, known_current), True
        except (ExactRequestError, MalformedResponseError) as exc:
            if isinstance(exc, ExactRequestError) and exc.status_code == 401:
                raise  # the token, not the division: asking Me would only draw a second 401
            log.info("divisions.list_in_known_division_failed", division=known_current, error=str(exc))
    current = _me_current_division(client)
    try:
        return _from_system_divisions(client, current, me_says_current=True), True
    except (ExactRequestError, MalformedResponseError) as exc:
        log.warning("divisions.list_failed", error=str(exc), fallback="current/Me")
        return [ListedDivision(current, None, None, True)], False


def _me_current_division(client: DivisionSource) -> int:
    """current/Me's CurrentDivision; a Me without a readable one is a MalformedResponseError (no fallback left)."""
    value = RowReader("current/Me", client.current_me(), key_field="UserID").integer("CurrentDivision", required=True)
    assert value is not None
    return value


def _from_system_divisions(
    client: DivisionSource, current: int, *, me_says_current: bool = False
) -> list[ListedDivision]:
    pages = client.pages(current, "system/Divisions", {"$select": DIVISION_FIELDS})
    rows = [row for page in pages for row in page.rows]
    if not me_says_current:
        flagged = [row.get("Code") for row in rows if row.get("Current") in (True, "true", "True", 1)]
        if len(flagged) == 1 and flagged[0] is not None:
            current = to_int(flagged[0], "system/Divisions Code") or current
    listed = []
    for row in rows:
        reader = RowReader("system/Divisions", row, key_field="Code")
        code = reader.integer("Code", required=True)
        assert code is not None
        listed.append(
            ListedDivision(
                code=code,
                description=reader.text("Description"),
                status=reader.integer("Status"),
                is_current=code == current,
            )
        )
    if not any(d.is_current for d in listed):
        listed.append(ListedDivision(current, None, None, True))
    return listed


def store_divisions(
    session: Session, connection_id: int, listed: Sequence[ListedDivision], complete: bool, clock: Clock
) -> None:
    """Upsert what Exact listed, in the caller's transaction. A person's choice (sync_enabled) is kept."""
    connection = session.get_one(Connection, connection_id)
    for item in listed:
        enabled = not connection.divisions_chosen and item.status in (None, ACTIVE)
        stmt = insert(Division).values(
            connection_id=connection_id,
            code=item.code,
            description=item.description,
            status=item.status,
            is_current=item.is_current,
            sync_enabled=enabled,
            available=True,
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Division.connection_id, Division.code],
                set_={
                    "description": func.coalesce(stmt.excluded.description, Division.description),
                    "status": func.coalesce(stmt.excluded.status, Division.status),
                    "is_current": stmt.excluded.is_current,
                    "available": True,
                    "unavailable_reason": None,
                },
            )
        )
    codes = [item.code for item in listed]
    others = update(Division).where(Division.connection_id == connection_id, Division.code.not_in(codes))
    session.execute(others.values(is_current=False))
    if complete:
        session.execute(
            others.where(Division.available.is_(True)).values(
                available=False, unavailable_reason="no longer listed by system/Divisions"
            )
        )
    connection.current_division = next((item.code for item in listed if item.is_current), None)
    connection.divisions_checked_at = to_datetime(clock.now())


def refresh_divisions(
    sessions: sessionmaker[Session], connection_id: int, client: DivisionSource, clock: Clock
) -> list[ListedDivision]:
    with sessions() as session:
        known = session.get_one(Connection, connection_id).current_division
    listed, complete = list_divisions(client, known)
    with sessions.begin() as session:
        store_divisions(session, connection_id, listed, complete, clock)
    log.info("divisions.refreshed", connection_id=connection_id, divisions=[d.code for d in listed])
    return listed


def divisions_to_sync(
    sessions: sessionmaker[Session], connection_id: int, client: DivisionSource, clock: Clock, check_hours: float
) -> list[int]:
    """Re-read the division list when due, then the enabled and available ones (current first)."""
    with sessions() as session:
        checked = session.get_one(Connection, connection_id).divisions_checked_at
    if checked is None or checked <= to_datetime(clock.now()) - timedelta(hours=check_hours):
        refresh_divisions(sessions, connection_id, client, clock)
    with sessions() as session:
        codes = session.scalars(
            select(Division.code)
            .where(Division.connection_id == connection_id, Division.sync_enabled, Division.available)
            .order_by(Division.is_current.desc(), Division.code)
        ).all()
    if not codes:
        raise ConfigurationError(
            "no division of this connection is enabled and available for syncing "
            "(see `exact-sync connections divisions NAME`)"
        )
    return list(codes)


def mark_unavailable(sessions: sessionmaker[Session], connection_id: int, code: int, reason: str) -> None:
    with sessions.begin() as session:
        session.execute(
            update(Division)
            .where(Division.connection_id == connection_id, Division.code == code)
            .values(available=False, unavailable_reason=reason[:2000])
        )
    log.warning("divisions.unavailable", connection_id=connection_id, division=code, reason=reason)


def mark_synced(sessions: sessionmaker[Session], connection_id: int, code: int, clock: Clock) -> None:
    with sessions.begin() as session:
        session.execute(
            update(Division)
            .where(Division.connection_id == connection_id, Division.code == code)
            .values(last_synced_at=to_datetime(clock.now()))
        )


def choose_divisions(
    session: Session, connection_id: int, include: Sequence[int] = (), exclude: Sequence[int] = ()
) -> list[Division]:
    """`--include`: sync exactly these. `--exclude`: every active division but these. Caller commits."""
    if include and exclude:
        raise ConfigurationError("use either --include or --exclude, not both")
    divisions = list(
        session.scalars(select(Division).where(Division.connection_id == connection_id).order_by(Division.code))
    )
    known = {d.code for d in divisions}
    unknown = sorted((set(include) | set(exclude)) - known)
    if unknown:
        listed = ", ".join(map(str, sorted(known))) or "none yet (connect first)"
        raise ConfigurationError(f"unknown division(s) {', '.join(map(str, unknown))}; this connection has {listed}")
    for division in divisions:
        if include:
            division.sync_enabled = division.code in include
        else:
            division.sync_enabled = division.status in (None, ACTIVE) and division.code not in exclude
    session.get_one(Connection, connection_id).divisions_chosen = bool(include or exclude)
    return divisions
