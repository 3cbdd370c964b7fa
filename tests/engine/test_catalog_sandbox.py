"""Every declared entity synced through the real client from the sandbox: tables filled, idle runs cheap,
creates, updates and deletions (sync/Deleted, snapshots, the Modified feed) reach the tables."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from syncs.engine.streams import sync_division
from syncs.entities.catalog import CATALOG, TABLES
from syncs.entities.declaration import Strategy
from syncs.exact.client import ExactClient
from syncs.sandbox import SandboxServer
from syncs.sandbox.catalog import served

DIV = 124132
EVERY = list(CATALOG)


def live_ids(db: sessionmaker[Session], table: str) -> set[str]:
    with db() as session:
        found = session.execute(
            text(f'SELECT id FROM "{table}" WHERE division = :d AND deleted_at IS NULL'), {"d": DIV}
        )
        return {str(row[0]) for row in found}


def counts(db: sessionmaker[Session]) -> dict[str, int]:
    with db() as session:
        return {
            name: session.scalar(text(f'SELECT count(*) FROM "{name}" WHERE division = {DIV}')) or 0 for name in TABLES
        }


def expected_rows(records: list[dict[str, Any]], entity: str) -> dict[str, int]:
    """How many rows each table of an entity should hold for the sandbox's records."""
    spec = CATALOG[entity]
    found: dict[str, int] = {}
    for output in spec.outputs:
        rows = records
        if output.split.lines_only:
            rows = [r for r in rows if r["LineNumber"] != 0]
        if output.split.where:
            name, value = output.split.where
            rows = [r for r in rows if str(r[name]) == value]
        if output.split.header_of:
            rows = list({r[output.split.header_of]: r for r in rows}.values())
        found[output.table.name] = len(rows)
    return found


def test_every_entity_fills_its_tables(
    sandbox: SandboxServer, exact: ExactClient, db: sessionmaker[Session], connection_id: int
) -> None:
    state = sandbox.state
    sync_division(db, exact, connection_id, DIV, EVERY)
    filled = counts(db)
    assert all(filled.values()), {name: n for name, n in filled.items() if not n}
    for entity in served():
        for table, rows in expected_rows(state.records(DIV, entity.name), entity.name).items():
            assert filled[table] == rows, table
    assert filled["exact_divisions"] == 1

    calls = exact.api_calls
    assert sync_division(db, exact, connection_id, DIV, EVERY).inserted == 0
    snapshot_pages = sum(2 for e in CATALOG.values() if e.strategy is Strategy.SNAPSHOT and e.name != "exact_divisions")
    standard = sum(1 for e in CATALOG.values() if e.strategy is not Strategy.SYNC)
    # idle: one call per sync stream and the deletions stream; snapshots are read whole (6 rows, pages of 4 here)
    assert exact.api_calls - calls == (len(CATALOG) - standard) + 1 + snapshot_pages + 1 + 1


def test_changes_and_deletions_of_every_strategy_arrive(
    sandbox: SandboxServer, exact: ExactClient, db: sessionmaker[Session], connection_id: int
) -> None:
    state = sandbox.state
    sync_division(db, exact, connection_id, DIV, EVERY)
    contact = state.records(DIV, "contacts")[0]["ID"]
    journal = state.records(DIV, "journals")[0]["ID"]
    item = state.records(DIV, "items")[1]
    entry = state.records(DIV, "purchase_entries")[2]
    sandbox.state.clock.advance(3600)  # type: ignore[attr-defined]
    state.delete_record(DIV, "contacts", contact)  # sync/Deleted EntityType 5
    state.delete_record(DIV, "journals", journal)  # gone from the snapshot
    state.update_record(DIV, "items", item["ID"], Description="Renamed")
    state.update_record(DIV, "purchase_entries", entry["EntryID"], YourRef="PO-9")
    created = state.create_record(DIV, "vat_codes", Code="9", Description="New", Percentage=0.09)

    result = sync_division(db, exact, connection_id, DIV, EVERY)
    assert result.deleted == 2
    assert contact not in live_ids(db, "contacts") and journal not in live_ids(db, "journals")
    assert str(uuid.UUID(created["ID"])) in live_ids(db, "vat_codes")
    with db() as session:
        assert session.scalar(text("SELECT description FROM items WHERE id = :id"), {"id": item["ID"]}) == "Renamed"
        ref = session.scalar(text("SELECT your_ref FROM purchase_entries WHERE id = :id"), {"id": entry["EntryID"]})
        assert ref == "PO-9"
        stamped = session.scalar(
            text("SELECT count(*) FROM journals WHERE deleted_at IS NOT NULL AND synced_at > now() - interval '1 hour'")
        )
        assert stamped == 1
