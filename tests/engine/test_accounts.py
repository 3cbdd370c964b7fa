from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Account
from syncs.core.errors import MalformedResponseError
from syncs.entities.registry import ENTITIES
from tests.engine.support import DIVISION, recorded_accounts

FRANCE = uuid.UUID("454a5d46-ee70-4ed1-9375-9cfedeb138cd")


def test_spec() -> None:
    spec = ENTITIES["accounts"]
    assert spec.endpoint == "sync/CRM/Accounts"
    assert spec.deletion_entity_types == {2}
    assert {"ID", "Timestamp", "Code", "Name", "Modified"} <= set(spec.fields)
    assert spec.select.startswith("Timestamp,Division,ID,")


def test_recorded_accounts_are_mapped(db: sessionmaker[Session]) -> None:
    rows = recorded_accounts()
    with db.begin() as session:
        result = ENTITIES["accounts"].write_page(session, DIVISION, rows)
    assert (result.inserted, result.updated) == (len(rows), 0)
    assert result.max_timestamp == max(r["Timestamp"] for r in rows)
    with db() as session:
        account = session.get(Account, (DIVISION, FRANCE))
        assert account is not None
        assert account.code == "0000001"  # right-aligned in 18 chars by Exact
        assert account.name == "Exact Software France"
        assert account.country == "FR"
        assert account.is_sales is False
        assert account.raw["IsPurchase"] is False  # kept in raw: sync/CRM/Accounts has no IsPurchase to select
        assert account.modified == datetime(2018, 9, 21, 2, 19, 44, 913000, tzinfo=UTC)
        assert account.division == DIVISION
        assert account.deleted_at is None
        assert "__metadata" not in account.raw
        assert account.raw["Code"] == "           0000001"  # raw stays as Exact sent it
        assert account.synced_at is not None


def test_same_page_twice_changes_nothing(db: sessionmaker[Session]) -> None:
    rows = recorded_accounts()
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, rows)
    with db.begin() as session:
        again = ENTITIES["accounts"].write_page(session, DIVISION, rows)
    assert (again.inserted, again.updated) == (0, 0)


def test_older_timestamp_never_overwrites(db: sessionmaker[Session]) -> None:
    row = recorded_accounts()[0]
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, [{**row, "Timestamp": 50, "Name": "new"}])
    with db.begin() as session:
        older = ENTITIES["accounts"].write_page(session, DIVISION, [{**row, "Timestamp": 40, "Name": "old"}])
    assert (older.inserted, older.updated) == (0, 0)
    with db.begin() as session:
        newer = ENTITIES["accounts"].write_page(session, DIVISION, [{**row, "Timestamp": 60, "Name": "newest"}])
    assert (newer.inserted, newer.updated) == (0, 1)
    with db() as session:
        account = session.get(Account, (DIVISION, FRANCE))
        assert account is not None and (account.name, account.timestamp) == ("newest", 60)


def test_duplicate_key_in_one_page_keeps_the_newest(db: sessionmaker[Session]) -> None:
    row = recorded_accounts()[0]
    page = [{**row, "Timestamp": 70, "Name": "b"}, {**row, "Timestamp": 60, "Name": "a"}]
    with db.begin() as session:
        result = ENTITIES["accounts"].write_page(session, DIVISION, page)
    assert (result.inserted, result.updated, result.max_timestamp) == (1, 0, 70)
    with db() as session:
        assert session.scalar(select(Account.__table__.c.name)) == "b"


def test_newer_row_clears_deleted_at(db: sessionmaker[Session]) -> None:
    row = recorded_accounts()[0]
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, [row])
        session.get_one(Account, (DIVISION, FRANCE)).deleted_at = datetime(2024, 1, 1, tzinfo=UTC)
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, [{**row, "Timestamp": row["Timestamp"] + 1}])
    with db() as session:
        assert session.get_one(Account, (DIVISION, FRANCE)).deleted_at is None


def test_strings_for_numbers_and_booleans(db: sessionmaker[Session]) -> None:
    row = {
        **recorded_accounts()[0],
        "Timestamp": "123",
        "IsSales": "true",
        "Blocked": "0",
        "Division": "124132",
    }
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, [row])
    with db() as session:
        account = session.get_one(Account, (DIVISION, FRANCE))
        assert (account.timestamp, account.is_sales, account.blocked) == (123, True, False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Timestamp": None}, "Timestamp is missing"),
        ({"Timestamp": "x1"}, "field Timestamp"),
        ({"ID": "nope"}, "field ID"),
        ({"IsSales": "maybe"}, "field IsSales"),
        ({"Modified": "/Date(x)/"}, "field Modified"),
        ({"Division": 999}, "Division 999"),
    ],
)
def test_malformed_rows_fail_naming_the_field(
    db: sessionmaker[Session], change: dict[str, object], message: str
) -> None:
    rows = recorded_accounts()
    rows[-1] = {**rows[-1], **change}
    with pytest.raises(MalformedResponseError, match=message), db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, rows)
    with db() as session:
        assert session.scalar(select(Account.id)) is None
