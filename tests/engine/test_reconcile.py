"""Deletions that stay right: a division whose sync/Deleted was not read for over two months is reconciled by
reading every key, and a moved division (new DivisionMoveDate) is resynced from 0."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from syncs.engine.streams import sync_division
from syncs.exact.client import ExactClient
from syncs.sandbox import SandboxServer
from syncs.sandbox.dates import exact_datetime

DIV = 124132


def live(db: sessionmaker[Session], table: str) -> set[str]:
    with db() as session:
        rows = session.execute(text(f'SELECT id FROM "{table}" WHERE division = :d AND deleted_at IS NULL'), {"d": DIV})
        return {str(row[0]) for row in rows}


def age_deletions_cursor(db: sessionmaker[Session], days: int) -> None:
    with db.begin() as session:
        session.execute(
            text(
                "UPDATE sync_cursors SET timestamp = greatest(timestamp, 1),"
                " checked_at = now() - make_interval(days => :days), updated_at = now() - make_interval(days => :days)"
                " WHERE entity = 'deleted'"
            ),
            {"days": days},
        )


def forget(sandbox: SandboxServer, entity: str, key: str) -> None:
    """Delete a row in the sandbox the way an expired deletion looks: gone, with no sync/Deleted row left."""
    store = sandbox.state.divisions[DIV].catalog.store(entity)
    del store.records[key]
    store.log.remove(key)


def test_a_stale_deletions_stream_reconciles_by_reading_every_key(
    sandbox: SandboxServer, exact: ExactClient, db: sessionmaker[Session], connection_id: int
) -> None:
    entities = ["contacts", "purchase_orders", "purchase_entries"]
    sync_division(db, exact, connection_id, DIV, entities)
    contact = sandbox.state.records(DIV, "contacts")[0]["ID"]
    entry = sandbox.state.records(DIV, "purchase_entries")[0]["EntryID"]
    forget(sandbox, "contacts", contact)
    forget(sandbox, "purchase_entries", entry)  # no deletion EntityType at all: only reconciliation finds it
    lines_before = live(db, "purchase_order_lines")

    age_deletions_cursor(db, 30)  # recent enough: sync/Deleted is trusted, nothing is reconciled
    sync_division(db, exact, connection_id, DIV, entities)
    assert contact in live(db, "contacts") and entry in live(db, "purchase_entries")

    age_deletions_cursor(db, 61)
    result = sync_division(db, exact, connection_id, DIV, entities)
    assert result.deleted == 2
    assert contact not in live(db, "contacts") and entry not in live(db, "purchase_entries")
    assert live(db, "purchase_order_lines") == lines_before  # every listed row stays


def test_a_moved_division_is_resynced_from_zero(
    sandbox: SandboxServer, exact: ExactClient, db: sessionmaker[Session], connection_id: int
) -> None:
    sync_division(db, exact, connection_id, DIV, ["exact_divisions", "items"])
    sync_division(db, exact, connection_id, DIV, ["exact_divisions", "items"])  # unchanged: nothing reset
    with db() as session:
        assert session.scalar(text("SELECT min(timestamp) FROM sync_cursors WHERE entity = 'items'")) > 0
    sandbox.state.divisions[DIV].move_date = exact_datetime(1_800_000_000)
    sync_division(db, exact, connection_id, DIV, ["exact_divisions"])
    with db() as session:
        cursors = session.execute(text("SELECT entity, timestamp FROM sync_cursors WHERE division = :d"), {"d": DIV})
        found = {str(entity): int(ts) for entity, ts in cursors}
        assert found["items"] == 0  # (a snapshot's own cursor means nothing)
        assert session.scalar(text("SELECT max(timestamp) FROM items")) == 0
    assert sync_division(db, exact, connection_id, DIV, ["items"]).updated == len(sandbox.state.records(DIV, "items"))


def test_a_moved_division_resyncs_the_streams_after_it_in_the_same_run(
    sandbox: SandboxServer, exact: ExactClient, db: sessionmaker[Session], connection_id: int
) -> None:
    """The stream after system/Divisions starts from the cursor its page reset, not the one before: it is not
    opened while that page is written (as other streams' next ones are)."""
    sync_division(db, exact, connection_id, DIV, ["exact_divisions", "items"])
    sandbox.state.divisions[DIV].move_date = exact_datetime(1_800_000_000)
    result = sync_division(db, exact, connection_id, DIV, ["exact_divisions", "items"])
    assert result.by_stream["items"][1] == len(sandbox.state.records(DIV, "items"))  # every row rewritten
    with db() as session:
        assert session.scalar(text("SELECT min(timestamp) FROM items WHERE division = :d"), {"d": DIV}) > 0
