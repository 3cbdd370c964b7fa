"""Which entity streams a scheduled run reads: per-entity cadence, so idle divisions stay within the API budget.

A declaration's cadence gives each entity a default interval: `transactional` entities are read on every run (the
connection's interval), `master` data every 4 hours, `reference` lists daily. A connection may override an
entity's interval or switch it off (`connection_entities`, `exact-sync connections set NAME --entity X --every
1h` / `--off`). A stream is due when its last check (`sync_cursors.checked_at`, the start of the run that read
it) is at least its interval ago, less a little slack so that runs starting a few seconds early still count.
Runs that name their entities (`--entity`, `--full`, webhooks) read them regardless. While an entity's webhooks
are healthy, beat's runs read it only as a safety sweep (`Schedule.swept`, syncs.webhooks.health).

The deletions stream runs with every run: one call per run and division.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.internal import ConnectionEntity, SyncCursor
from syncs.entities.declaration import Cadence
from syncs.entities.registry import ENTITIES

CADENCE_INTERVALS: dict[Cadence, timedelta | None] = {
    Cadence.TRANSACTIONAL: None,  # every run
    Cadence.MASTER: timedelta(hours=4),
    Cadence.REFERENCE: timedelta(days=1),
}
SLACK = timedelta(minutes=2)
DELETIONS_KEPT = timedelta(days=60)


@dataclass(frozen=True)
class Schedule:
    """A scheduled run's view: when it started and each enabled entity's interval (None: every run)."""

    now: datetime
    intervals: Mapping[str, timedelta | None]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (it travels in a run's plan): the start as ISO 8601, intervals in seconds."""
        return {
            "now": self.now.isoformat(),
            "intervals": {
                name: None if interval is None else interval.total_seconds()
                for name, interval in self.intervals.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        intervals = {
            name: None if seconds is None else timedelta(seconds=seconds) for name, seconds in data["intervals"].items()
        }
        return cls(datetime.fromisoformat(data["now"]), intervals)

    def swept(self, covered: Iterable[str], every: timedelta) -> Schedule:
        """This schedule with the `covered` entities (healthy webhooks announce their changes) read at most `every`
        (the safety sweep); an entity whose own interval is longer keeps it."""
        intervals = dict(self.intervals)
        for name in covered:
            if name in intervals:
                own = intervals[name]
                intervals[name] = every if own is None else max(own, every)
        return Schedule(self.now, intervals)

    def due(self, checked: Mapping[str, datetime | None]) -> list[str]:
        """The enabled entities whose interval has passed since `checked` (their last check), in catalog order."""
        found = []
        for name, interval in self.intervals.items():
            last = checked.get(name)
            if interval is None or last is None or last + interval - SLACK <= self.now:
                found.append(name)
        return found


def entity_settings(session: Session, connection_id: int) -> dict[str, ConnectionEntity]:
    rows = session.scalars(select(ConnectionEntity).where(ConnectionEntity.connection_id == connection_id))
    return {row.entity: row for row in rows}


def schedule_for(session: Session, connection_id: int, now: datetime) -> Schedule:
    """Every entity the connection has on, with its interval (its override, else its cadence's default)."""
    overrides = entity_settings(session, connection_id)
    intervals: dict[str, timedelta | None] = {}
    for name, spec in ENTITIES.items():
        override = overrides.get(name)
        if override is not None and not override.enabled:
            continue
        if override is not None and override.every_minutes is not None:
            intervals[name] = timedelta(minutes=override.every_minutes)
        else:
            intervals[name] = CADENCE_INTERVALS[spec.cadence]
    return Schedule(now, intervals)


def deletions_stale(session: Session, connection_id: int, division: int) -> bool:
    """Whether sync/Deleted can no longer be trusted for this division: its stream was last read more than
    DELETIONS_KEPT ago (Exact keeps deletions for about two months), so deletions may have been dropped unseen."""
    found = session.execute(
        select(
            SyncCursor.timestamp,
            func.coalesce(SyncCursor.checked_at, SyncCursor.updated_at) < func.now() - DELETIONS_KEPT,
        ).where(
            SyncCursor.connection_id == connection_id, SyncCursor.division == division, SyncCursor.entity == "deleted"
        )
    ).one_or_none()
    return found is not None and bool(found[0]) and bool(found[1])


def last_checked(session: Session, connection_id: int, division: int) -> dict[str, datetime | None]:
    rows = session.execute(
        select(SyncCursor.entity, SyncCursor.checked_at).where(
            SyncCursor.connection_id == connection_id, SyncCursor.division == division
        )
    )
    return {entity: checked for entity, checked in rows}


def mark_checked(
    session: Session, connection_id: int, division: int, entities: Iterable[str], now: datetime | None
) -> None:
    """Record that these streams were read by a run that started at `now` (None: the database's now), creating
    their cursor rows when needed."""
    when = func.now() if now is None else now
    values = [
        {"connection_id": connection_id, "division": division, "entity": name, "timestamp": 0, "checked_at": when}
        for name in entities
    ]
    if not values:
        return
    stmt = insert(SyncCursor).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[SyncCursor.connection_id, SyncCursor.division, SyncCursor.entity],
        set_={"checked_at": stmt.excluded.checked_at},
    )
    session.execute(stmt)


def set_entity(
    session: Session, connection_id: int, entity: str, *, enabled: bool | None, every_minutes: int | None
) -> ConnectionEntity:
    """Change one entity's switch or interval for a connection (unknown entities: KeyError)."""
    if entity not in ENTITIES:
        raise KeyError(entity)
    row = session.get(ConnectionEntity, (connection_id, entity))
    if row is None:
        row = ConnectionEntity(connection_id=connection_id, entity=entity, enabled=True)
        session.add(row)
    if enabled is not None:
        row.enabled = enabled
    if every_minutes is not None:
        row.every_minutes = every_minutes
    session.flush()
    return row
