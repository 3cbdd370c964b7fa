"""One company's rows never overwrite another's: synced tables are keyed by (division, id) (issue 7 point 2)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models import Account, SalesInvoice, SalesInvoiceLine
from models.migrate import alembic_config, create_database_if_missing
from syncs.entities.registry import ENTITIES
from tests.conftest import SESSION_TAG, _admin_execute
from tests.engine.support import DIVISION, write_deletions
from tests.engine.test_deletions import deleted
from tests.engine.test_sales_invoices import INV_A, line_row

OTHER = DIVISION + 1
GUID = "0ae5f4ea-0000-4000-8000-000000000001"


def account(division: int, name: str, timestamp: int) -> dict[str, Any]:
    return {"ID": GUID, "Timestamp": timestamp, "Division": division, "Name": name, "Code": "  1"}


def names(session: Session) -> dict[int, tuple[str | None, bool]]:
    return {a.division: (a.name, a.deleted_at is not None) for a in session.scalars(select(Account))}


def test_one_guid_in_two_divisions_keeps_two_rows(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, [account(DIVISION, "first", 10)])
        ENTITIES["accounts"].write_page(
            session, OTHER, [account(OTHER, "second", 5)]
        )  # older Timestamp, other division
    with db() as session:
        assert names(session) == {DIVISION: ("first", False), OTHER: ("second", False)}
    with db.begin() as session:  # newer-only holds per division: the other division's row does not count
        ENTITIES["accounts"].write_page(session, OTHER, [account(OTHER, "second, newer", 6)])
        ENTITIES["accounts"].write_page(session, DIVISION, [account(DIVISION, "first, older", 9)])
    with db() as session:
        assert names(session) == {DIVISION: ("first", False), OTHER: ("second, newer", False)}


def test_a_deletion_in_one_division_leaves_the_other_alone(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, [account(DIVISION, "first", 10)])
        ENTITIES["accounts"].write_page(session, OTHER, [account(OTHER, "second", 10)])
    with db.begin() as session:
        assert write_deletions(session, DIVISION, [deleted(GUID, 2, 20)]).deleted == 1
    with db() as session:
        assert names(session) == {DIVISION: ("first", True), OTHER: ("second", False)}


def test_invoices_and_their_totals_stay_per_division(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        ENTITIES["sales_invoices"].write_page(session, DIVISION, [line_row(INV_A, 1, 10, "100", "21")])
        other_rows = [{**line_row(INV_A, n, 10, "7", "1"), "Division": OTHER} for n in (1, 2)]
        ENTITIES["sales_invoices"].write_page(session, OTHER, other_rows)
    with db.begin() as session:  # deleting the invoice in one division marks neither the other's header nor lines
        write_deletions(session, DIVISION, [deleted(INV_A, 13, 20)])
    with db() as session:
        headers = {h.division: (h.amount_dc, h.deleted_at is None) for h in session.scalars(select(SalesInvoice))}
        assert headers == {DIVISION: (Decimal(100), False), OTHER: (Decimal(14), True)}
        live_lines = session.scalars(select(SalesInvoiceLine.division).where(SalesInvoiceLine.deleted_at.is_(None)))
        assert sorted(live_lines) == [OTHER, OTHER]


def test_migration_keeps_existing_rows(database_url: str) -> None:
    """Upgrading a database that holds rows keyed by id alone keeps every row and switches the key in place."""
    from alembic import command

    name = f"exact_sync_keys_{SESSION_TAG}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    create_database_if_missing(url)
    engine = create_engine(url)
    try:
        config = alembic_config(url)
        command.upgrade(config, "0004")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO accounts (id, division, timestamp, raw, name) VALUES (:id, :d, 5, '{}', 'kept')"),
                {"id": GUID, "d": DIVISION},
            )
        command.upgrade(config, "head")
        with engine.begin() as conn:
            key = conn.scalar(
                text(
                    "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i"
                    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                    " WHERE i.indrelid = 'accounts'::regclass AND i.indisprimary"
                )
            )
            assert key == "division,id"
            conn.execute(
                text("INSERT INTO accounts (id, division, timestamp, raw) VALUES (:id, :d, 5, '{}')"),
                {"id": GUID, "d": OTHER},
            )
            kept = conn.execute(text("SELECT division, name FROM accounts ORDER BY division")).all()
        assert [tuple(r) for r in kept] == [(DIVISION, "kept"), (OTHER, None)]
    finally:
        engine.dispose()
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_marking_deleted_stamps_synced_at(db: sessionmaker[Session]) -> None:
    """So "what changed in the last hour" (`synced_at`) sees deletions too."""
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, [account(DIVISION, "first", 10)])
        session.execute(text("UPDATE accounts SET synced_at = now() - interval '1 day'"))
    with db.begin() as session:
        write_deletions(session, DIVISION, [deleted(GUID, 2, 20)])
    with db() as session:
        age = session.scalar(text("SELECT now() - synced_at < interval '1 hour' FROM accounts"))
    assert age is True
