"""The same behaviour for every declared entity, with rows generated from its declaration: a replayed page, an
older row, a duplicate key in a page, a malformed value, deletions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.errors import MalformedResponseError
from syncs.entities.catalog import CATALOG
from syncs.entities.declaration import Entity, Kind, Strategy
from syncs.entities.registry import ENTITIES
from syncs.sandbox.catalog import CatalogStore
from syncs.sandbox.dates import exact_datetime
from tests.engine.support import write_deletions

DIV = 124132
ACCOUNTS = [str(uuid.UUID(int=n)) for n in range(1, 4)]
NAMES = sorted(CATALOG)


def generated(entity: Entity, count: int = 6) -> list[dict[str, Any]]:
    """Rows as the sandbox serves them (references to other entities are left empty here)."""
    store = CatalogStore(DIV, lambda: 0, lambda key, entity_type, now: {})
    rows = []
    for n in range(1, count + 1):
        row = store.generated(entity, n, ACCOUNTS)
        if entity.strategy is Strategy.SYNC:
            row["Timestamp"] = 100 + n
        if "Modified" in row:
            row["Modified"] = exact_datetime(1_700_000_000 + n)
        rows.append(row)
    return rows


def admitted(entity: Entity, row: dict[str, Any]) -> dict[str, Any]:
    """The row, made one that the entity's first table keeps (time transactions keep Type 1 only)."""
    where = entity.outputs[0].split.where
    return {**row, where[0]: int(where[1])} if where else row


def marker(entity: Entity) -> str:
    """A text or number field of the entity's first table whose value we change to tell versions apart."""
    table = entity.tables[0]
    return next(f.exact for f in table.fields if f.kind in (Kind.TEXT, Kind.NUMBER) and f.exact not in table.key)


def stored_marker(db: sessionmaker[Session], entity: Entity) -> dict[str, Any]:
    table = entity.tables[0].name
    with db() as session:
        found = session.execute(text(f'SELECT raw FROM "{table}" WHERE division = :d'), {"d": DIV}).scalars()
        return {str(raw.get(entity.tables[0].key[0])): raw.get(marker(entity)) for raw in found}


def write(db: sessionmaker[Session], name: str, rows: list[dict[str, Any]]) -> tuple[int, int]:
    with db.begin() as session:
        result = ENTITIES[name].write_page(session, DIV, rows)
    return result.inserted, result.updated


def newer(entity: Entity, row: dict[str, Any], step: int, value: Any) -> dict[str, Any]:
    """The row changed (`value` in the marker field) `step` versions later (negative: earlier)."""
    changed = {**row, marker(entity): value}
    if "Timestamp" in row:
        changed["Timestamp"] = row["Timestamp"] + step
    if "Modified" in row:
        changed["Modified"] = exact_datetime(1_700_000_000 + 10 * step + 1_000)
    return changed


@pytest.mark.parametrize("name", NAMES)
def test_replayed_page_changes_nothing(db: sessionmaker[Session], name: str) -> None:
    rows = generated(CATALOG[name])
    inserted, _ = write(db, name, rows)
    assert inserted > 0
    assert write(db, name, rows) == (0, 0)


@pytest.mark.parametrize("name", NAMES)
def test_an_older_row_never_overwrites(db: sessionmaker[Session], name: str) -> None:
    entity = CATALOG[name]
    if entity.strategy is Strategy.SNAPSHOT and "Modified" not in entity.select_fields:
        pytest.skip("snapshot without Modified: the list as read is the truth")
    row = admitted(entity, generated(entity, 2)[1])  # a line row where the feed has header rows
    value = "41" if isinstance(row[marker(entity)], str) else 41.5
    write(db, name, [newer(entity, row, 10, value)])
    assert write(db, name, [newer(entity, row, 5, "older" if isinstance(value, str) else 7.25)]) == (0, 0)
    assert stored_marker(db, entity)[str(row[entity.tables[0].key[0]])] == value


@pytest.mark.parametrize("name", NAMES)
def test_duplicate_key_in_one_page_keeps_the_newest(db: sessionmaker[Session], name: str) -> None:
    entity = CATALOG[name]
    row = admitted(entity, generated(entity, 2)[1])  # a line row where the feed has header rows
    value = "newest" if isinstance(row[marker(entity)], str) else 99.5
    page = [newer(entity, row, 20, value), newer(entity, row, 10, "b" if isinstance(value, str) else 1.5)]
    write(db, name, page)
    assert stored_marker(db, entity)[str(row[entity.tables[0].key[0]])] == value


@pytest.mark.parametrize("name", NAMES)
def test_a_malformed_value_fails_the_page_naming_row_field_and_value(db: sessionmaker[Session], name: str) -> None:
    entity = CATALOG[name]
    rows = generated(entity, 3)
    field = next(f for t in entity.tables for f in t.fields if f.kind not in (Kind.TEXT,) and f.exact not in t.key)
    rows[1] = {**rows[1], field.exact: "garbage!"}
    with pytest.raises(MalformedResponseError) as failure:
        write(db, name, rows)
    message = str(failure.value)
    assert name in message and str(rows[1][entity.row_key]) in message
    assert field.exact in message and "garbage!" in message
    with db() as session:  # nothing of the page was written
        assert session.scalar(text(f'SELECT count(*) FROM "{entity.tables[0].name}"')) == 0


@pytest.mark.parametrize("name", [n for n in NAMES if CATALOG[n].deleted_types])
def test_a_deletion_marks_the_row_in_every_table_of_the_entity(db: sessionmaker[Session], name: str) -> None:
    entity = CATALOG[name]
    rows = generated(entity)
    write(db, name, rows)
    table = next(o.table.name for o in entity.outputs if o.table.key[0] == entity.row_key)
    gone = ENTITIES[name].records(rows, DIV)[table][-1]["raw"][entity.row_key]
    deletion = {
        "ID": str(uuid.uuid4()),
        "Timestamp": 10_000,
        "DeletedDate": exact_datetime(1_700_000_000),
        "Division": DIV,
        "EntityKey": gone,
        "EntityType": min(entity.deleted_types),
    }
    with db.begin() as session:
        assert write_deletions(session, DIV, [deletion]).deleted >= 1
    with db() as session:
        marked = session.execute(
            text(f'SELECT raw ->> :key, synced_at FROM "{table}" WHERE deleted_at IS NOT NULL'), {"key": entity.row_key}
        ).all()
    assert [row[0] for row in marked] == [str(gone)]


@pytest.mark.parametrize("name", [n for n in NAMES if CATALOG[n].strategy is Strategy.SNAPSHOT])
def test_a_snapshot_marks_what_it_no_longer_lists(db: sessionmaker[Session], name: str) -> None:
    entity = CATALOG[name]
    rows = generated(entity)
    seen: dict[str, set[Any]] = {}
    with db.begin() as session:
        ENTITIES[name].writer.write_page(session, DIV, rows[1:], seen=seen)
        write_first_only = ENTITIES[name].writer.write_page(session, DIV + 1, rows[:1])  # another division
        assert write_first_only.inserted == 1
    with db.begin() as session:
        ENTITIES[name].writer.write_page(session, DIV, rows[:1])  # stored earlier, missing from this snapshot
    with db.begin() as session:
        assert ENTITIES[name].mark_missing(session, DIV, seen) == 1
    with db() as session:
        live = session.execute(text(f'SELECT division, deleted_at IS NULL FROM "{entity.tables[0].name}"')).all()
    assert sorted(tuple(r) for r in live).count((DIV, True)) == len(rows) - 1
    assert (DIV + 1, True) in [tuple(r) for r in live]
