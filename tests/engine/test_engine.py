from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, SalesInvoiceLine, SyncCursor
from syncs.engine import SyncCounts, sync_division
from syncs.errors import ConfigurationError, ExactServerError, MalformedResponseError
from tests.engine.support import DIVISION, FakeExact, recorded_accounts
from tests.engine.test_deletions import deleted
from tests.engine.test_sales_invoices import INV_A, line_row

ACCOUNTS = "sync/CRM/Accounts"
INVOICES = "sync/SalesInvoice/SalesInvoices"
DELETED = "sync/Deleted"


def cursor(db: sessionmaker[Session], connection_id: int, entity: str) -> int | None:
    with db() as session:
        return session.scalar(
            select(SyncCursor.timestamp).where(
                SyncCursor.connection_id == connection_id,
                SyncCursor.division == DIVISION,
                SyncCursor.entity == entity,
            )
        )


def count(db: sessionmaker[Session], model: Any) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def many_accounts(n: int) -> list[dict[str, Any]]:
    base = recorded_accounts()[0]
    return [{**base, "ID": f"00000000-0000-0000-0000-{i:012d}", "Timestamp": 100 + i} for i in range(n)]


def test_full_flow_and_idle_rerun(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact()
    exact.add(ACCOUNTS, *recorded_accounts())
    exact.add(INVOICES, line_row(INV_A, 1, 7000, "10", "2"), line_row(INV_A, 2, 7001, "5", "1"))
    exact.add(DELETED, deleted(recorded_accounts()[0]["ID"], 2, 9000))
    seen: list[tuple[str, int]] = []
    counts = sync_division(
        db,
        exact,
        connection_id,
        DIVISION,
        ["accounts", "sales_invoices"],
        progress=lambda e, n: seen.append((e, n)),
    )
    assert counts == SyncCounts(inserted=6 + 3, updated=0, deleted=1)
    assert seen == [("accounts", 6), ("sales_invoices", 2), ("deleted", 1)]
    assert [call[1] for call in exact.calls] == [ACCOUNTS, INVOICES, DELETED]
    assert exact.calls[0][2]["$filter"] == "Timestamp gt 0L"
    assert exact.calls[2][2]["$select"] == "ID,Timestamp,DeletedBy,DeletedDate,Division,EntityKey,EntityType"
    assert (cursor(db, connection_id, "accounts"), cursor(db, connection_id, "sales_invoices")) == (
        1005,
        7001,
    )
    assert cursor(db, connection_id, "deleted") == 9000

    exact.calls.clear()
    again = sync_division(db, exact, connection_id, DIVISION, ["accounts", "sales_invoices"])
    assert again == SyncCounts()
    assert [call[2]["$filter"] for call in exact.calls] == [
        "Timestamp gt 1005L",
        "Timestamp gt 7001L",
        "Timestamp gt 9000L",
    ]


def test_deletions_run_whatever_entities_were_asked(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact()
    assert sync_division(db, exact, connection_id, DIVISION, []) == SyncCounts()
    assert [call[1] for call in exact.calls] == [DELETED]


def test_unknown_entity_is_refused(db: sessionmaker[Session], connection_id: int) -> None:
    with pytest.raises(ConfigurationError, match="contacts"):
        sync_division(db, FakeExact(), connection_id, DIVISION, ["contacts"])


def test_crash_mid_stream_resumes_without_loss_or_duplicates(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(10))  # Timestamps 100..109 -> pages of 3
    exact.fail_after[ACCOUNTS] = 2
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert count(db, Account) == 6
    # Page 2 ended at 105; its newest Timestamp is re-read on resume in case rows sharing it come next.
    assert cursor(db, connection_id, "accounts") == 104
    assert cursor(db, connection_id, "deleted") is None  # the run stopped before the deletions stream

    del exact.fail_after[ACCOUNTS]
    counts = sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert counts == SyncCounts(inserted=4, updated=0, deleted=0)  # 105 re-read but unchanged
    assert count(db, Account) == 10
    assert cursor(db, connection_id, "accounts") == 109


def test_rows_sharing_a_timestamp_across_a_page_boundary_survive_a_crash(
    db: sessionmaker[Session], connection_id: int
) -> None:
    exact = FakeExact(page_size=2)
    # An invoice whose header changed: all three lines carry the same Timestamp, split over two pages.
    exact.add(INVOICES, *(line_row(INV_A, n, 500, "1", "0") for n in (1, 2, 3)))
    exact.fail_after[INVOICES] = 1
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["sales_invoices"])
    assert count(db, SalesInvoiceLine) == 2
    del exact.fail_after[INVOICES]
    sync_division(db, exact, connection_id, DIVISION, ["sales_invoices"])
    assert count(db, SalesInvoiceLine) == 3


def test_cursor_is_the_max_even_when_rows_are_unsorted(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=4)
    exact.shuffle_pages = True  # newest row first within each page
    exact.add(ACCOUNTS, *many_accounts(6))
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert cursor(db, connection_id, "accounts") == 105


def test_malformed_page_fails_clearly_and_commits_nothing_of_it(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=3)
    rows = many_accounts(6)
    rows[4] = {**rows[4], "IsSales": "perhaps"}
    exact.add(ACCOUNTS, *rows)
    with pytest.raises(MalformedResponseError) as failure:
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    message = str(failure.value)
    assert "page 2" in message and "IsSales" in message and "sync/CRM/Accounts" in message
    assert "00000000-0000-0000-0000-000000000004" in message
    assert count(db, Account) == 3  # page 1 only: nothing of page 2, not even its good rows
    assert cursor(db, connection_id, "accounts") == 101


def test_value_too_long_for_its_column_is_a_malformed_response(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact()
    exact.add(ACCOUNTS, {**recorded_accounts()[0], "Status": "X" * 50})
    with pytest.raises(MalformedResponseError, match="does not fit"):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert cursor(db, connection_id, "accounts") is None


def test_full_run_starts_at_zero_and_never_lowers_the_cursor(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=2)
    exact.add(ACCOUNTS, *many_accounts(5))
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    with db.begin() as session:  # a row lost locally comes back with a full run
        session.delete(session.get_one(Account, "00000000-0000-0000-0000-000000000003"))
    exact.calls.clear()
    exact.fail_after[ACCOUNTS] = 1
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"], full=True)
    assert exact.calls[0][2]["$filter"] == "Timestamp gt 0L"
    assert cursor(db, connection_id, "accounts") == 104  # the crashed full run did not lower it
    assert count(db, Account) == 4  # row 103 sits in the page the crash never reached
    del exact.fail_after[ACCOUNTS]
    counts = sync_division(db, exact, connection_id, DIVISION, ["accounts"], full=True)
    assert counts == SyncCounts(inserted=1, updated=0, deleted=0)
    assert count(db, Account) == 5
    assert cursor(db, connection_id, "accounts") == 104
