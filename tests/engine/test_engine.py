from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker
from structlog.testing import capture_logs

from models import Account, SalesInvoiceLine, SyncCursor
from syncs.core.errors import ConfigurationError, ExactServerError, MalformedResponseError
from syncs.engine.streams import SyncCounts, sync_division
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


def progress_state(db: sessionmaker[Session], connection_id: int, entity: str) -> tuple[str | None, int | None]:
    """(resume_url, pending_timestamp) of a stream's unfinished enumeration."""
    with db() as session:
        found = session.execute(
            select(SyncCursor.resume_url, SyncCursor.pending_timestamp).where(
                SyncCursor.connection_id == connection_id,
                SyncCursor.division == DIVISION,
                SyncCursor.entity == entity,
            )
        ).one_or_none()
    return (found.resume_url, found.pending_timestamp) if found is not None else (None, None)


def account_timestamps(db: sessionmaker[Session]) -> list[int]:
    with db() as session:
        return sorted(t for t in session.scalars(select(Account.timestamp)) if t is not None)


def accounts_at(*timestamps: int) -> list[dict[str, Any]]:
    base = recorded_accounts()[0]
    return [{**base, "ID": f"00000000-0000-0000-0000-{ts:012d}", "Timestamp": ts} for ts in timestamps]


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
    assert cursor(db, connection_id, "deleted") == 0  # an idle stream only records that it was checked


def test_unknown_entity_is_refused(db: sessionmaker[Session], connection_id: int) -> None:
    with pytest.raises(ConfigurationError, match="widgets"):
        sync_division(db, FakeExact(), connection_id, DIVISION, ["widgets"])


def test_crash_mid_stream_resumes_without_loss_or_duplicates(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(10))  # Timestamps 100..109 -> pages of 3
    exact.fail_after[ACCOUNTS] = 2
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert count(db, Account) == 6
    # The cursor moves only at the end of the enumeration; the resume point says where it stopped.
    assert cursor(db, connection_id, "accounts") == 0
    resume_url, pending = progress_state(db, connection_id, "accounts")
    assert resume_url is not None and pending == 105
    assert cursor(db, connection_id, "deleted") is None  # the run stopped before the deletions stream

    del exact.fail_after[ACCOUNTS]
    counts = sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert counts == SyncCounts(inserted=4, updated=0, deleted=0)
    assert count(db, Account) == 10
    assert cursor(db, connection_id, "accounts") == 109
    assert progress_state(db, connection_id, "accounts") == (None, None)


def test_out_of_order_pages_lose_nothing_across_a_crash(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=2)
    exact.timestamp_order = False  # pages [[100, 500], [200]]: Exact does not promise Timestamp order
    exact.add(ACCOUNTS, *accounts_at(100, 500, 200))
    exact.fail_after[ACCOUNTS] = 1
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert account_timestamps(db) == [100, 500]
    assert cursor(db, connection_id, "accounts") == 0  # not 499: that would skip 200 for good
    assert progress_state(db, connection_id, "accounts")[1] == 500

    del exact.fail_after[ACCOUNTS]
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert account_timestamps(db) == [100, 200, 500]
    assert cursor(db, connection_id, "accounts") == 500
    assert progress_state(db, connection_id, "accounts") == (None, None)


def crashed_with_resume_point(db: sessionmaker[Session], connection_id: int) -> tuple[FakeExact, str]:
    """Accounts 100..109 in pages of 3; the first run fails after two pages and leaves a resume point."""
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(10))
    exact.fail_after[ACCOUNTS] = 2
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    resume_url, _ = progress_state(db, connection_id, "accounts")
    assert resume_url is not None
    del exact.fail_after[ACCOUNTS]
    exact.calls.clear()
    return exact, resume_url


def test_a_rerun_continues_at_the_stored_next_without_rereading(db: sessionmaker[Session], connection_id: int) -> None:
    exact, resume_url = crashed_with_resume_point(db, connection_id)
    exact.served.clear()
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert exact.calls[0][1] == ACCOUNTS and exact.calls[0][3] == resume_url  # the rerun's first request
    assert [timestamps for endpoint, timestamps in exact.served if endpoint == ACCOUNTS] == [
        [106, 107, 108],
        [109],
    ]  # pages 1 and 2 (100..105) were not read again
    assert exact.calls[1][3] is None  # the deletions stream starts afresh
    assert cursor(db, connection_id, "accounts") == 109


def test_a_refused_resume_url_falls_back_to_the_stored_cursor(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *accounts_at(100, 101))
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert cursor(db, connection_id, "accounts") == 101
    exact.add(ACCOUNTS, *accounts_at(102, 103, 104, 105, 106, 107, 108))
    exact.fail_after[ACCOUNTS] = 1
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    resume_url, pending = progress_state(db, connection_id, "accounts")
    assert resume_url is not None and pending == 104

    del exact.fail_after[ACCOUNTS]
    exact.refuse_resume = True  # the skiptoken expired meanwhile
    exact.calls.clear()
    with capture_logs() as logs:
        counts = sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert [(call[1], call[2]["$filter"], call[3]) for call in exact.calls[:2]] == [
        (ACCOUNTS, "Timestamp gt 101L", resume_url),  # refused
        (ACCOUNTS, "Timestamp gt 101L", None),  # a fresh enumeration from the stored cursor
    ]
    assert any(log["event"] == "sync.resume_refused" for log in logs)
    assert counts.inserted == 4  # 105..108; 102..104 were re-read, unchanged
    assert account_timestamps(db) == list(range(100, 109))
    assert cursor(db, connection_id, "accounts") == 108
    assert progress_state(db, connection_id, "accounts") == (None, None)


def test_a_refused_resume_url_is_forgotten_even_when_the_fresh_start_fails(
    db: sessionmaker[Session], connection_id: int
) -> None:
    exact = FakeExact(page_size=2)
    exact.add(ACCOUNTS, *accounts_at(100, 101, 102))
    exact.fail_after[ACCOUNTS] = 1
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    exact.refuse_resume = True
    exact.fail_after[ACCOUNTS] = 0  # the fresh enumeration fails at once
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert progress_state(db, connection_id, "accounts") == (None, None)  # not asked again (Exact's error budget)
    del exact.fail_after[ACCOUNTS]
    exact.calls.clear()
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert exact.calls[0][3] is None
    assert account_timestamps(db) == [100, 101, 102]
    assert cursor(db, connection_id, "accounts") == 102


def test_an_empty_last_page_still_ends_the_enumeration(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=3)
    exact.trailing_empty_page = True  # 6 rows: [100..102], [103..105], then an empty page
    exact.add(ACCOUNTS, *many_accounts(6))
    exact.fail_after[ACCOUNTS] = 2
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert count(db, Account) == 6
    assert cursor(db, connection_id, "accounts") == 0
    del exact.fail_after[ACCOUNTS]
    assert sync_division(db, exact, connection_id, DIVISION, ["accounts"]) == SyncCounts()
    assert cursor(db, connection_id, "accounts") == 105
    assert progress_state(db, connection_id, "accounts") == (None, None)


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
    assert cursor(db, connection_id, "sales_invoices") == 0
    del exact.fail_after[INVOICES]
    sync_division(db, exact, connection_id, DIVISION, ["sales_invoices"])
    assert count(db, SalesInvoiceLine) == 3
    assert cursor(db, connection_id, "sales_invoices") == 500


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
    assert cursor(db, connection_id, "accounts") == 0
    assert progress_state(db, connection_id, "accounts")[1] == 102  # page 1's rows are 100..102


def test_value_out_of_range_for_its_column_is_a_malformed_response(
    db: sessionmaker[Session], connection_id: int
) -> None:
    exact = FakeExact()
    exact.add(ACCOUNTS, {**recorded_accounts()[0], "Timestamp": 2**63})
    with pytest.raises(MalformedResponseError, match=r"row '.*': field Timestamp: 9223372036854775808 is out of range"):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert cursor(db, connection_id, "accounts") is None


def test_full_run_starts_at_zero_and_never_lowers_the_cursor(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=2)
    exact.add(ACCOUNTS, *many_accounts(5))
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    with db.begin() as session:  # a row lost locally comes back with a full run
        session.delete(session.get_one(Account, (DIVISION, "00000000-0000-0000-0000-000000000003")))
    exact.calls.clear()
    exact.fail_after[ACCOUNTS] = 1
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"], full=True)
    assert exact.calls[0][2]["$filter"] == "Timestamp gt 0L"
    assert cursor(db, connection_id, "accounts") == 104  # the crashed full run did not lower it
    assert progress_state(db, connection_id, "accounts")[1] == 101  # its own resume point
    assert count(db, Account) == 4  # row 103 sits in a page the crash never reached
    del exact.fail_after[ACCOUNTS]
    exact.calls.clear()
    counts = sync_division(db, exact, connection_id, DIVISION, ["accounts"], full=True)
    assert (exact.calls[0][2]["$filter"], exact.calls[0][3]) == ("Timestamp gt 0L", None)  # starts over
    assert counts == SyncCounts(inserted=1, updated=0, deleted=0)
    assert count(db, Account) == 5
    assert cursor(db, connection_id, "accounts") == 104
    assert progress_state(db, connection_id, "accounts") == (None, None)


def test_an_incremental_run_continues_a_crashed_full_run(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=2)
    exact.add(ACCOUNTS, *many_accounts(5))
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    with db.begin() as session:
        session.delete(session.get_one(Account, (DIVISION, "00000000-0000-0000-0000-000000000003")))
    exact.fail_after[ACCOUNTS] = 1
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"], full=True)
    resume_url, _ = progress_state(db, connection_id, "accounts")
    del exact.fail_after[ACCOUNTS]
    exact.calls.clear()
    counts = sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert exact.calls[0][3] == resume_url
    assert counts == SyncCounts(inserted=1, updated=0, deleted=0)  # the rest of the full enumeration
    assert count(db, Account) == 5
    assert cursor(db, connection_id, "accounts") == 104


def test_a_full_run_replaces_the_resume_point_of_a_crashed_run(db: sessionmaker[Session], connection_id: int) -> None:
    exact = FakeExact(page_size=2)
    exact.add(ACCOUNTS, *accounts_at(100, 101, 102, 103, 104))
    exact.fail_after[ACCOUNTS] = 1
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    stale, _ = progress_state(db, connection_id, "accounts")
    exact.fail_after[ACCOUNTS] = 2
    exact.calls.clear()
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"], full=True)
    assert (exact.calls[0][2]["$filter"], exact.calls[0][3]) == ("Timestamp gt 0L", None)  # the stale point ignored
    resume_url, pending = progress_state(db, connection_id, "accounts")
    assert resume_url not in (None, stale) and pending == 103
    del exact.fail_after[ACCOUNTS]
    sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert account_timestamps(db) == [100, 101, 102, 103, 104]
    assert cursor(db, connection_id, "accounts") == 104
    assert progress_state(db, connection_id, "accounts") == (None, None)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("updated_at = updated_at - interval '31 minutes'", "older than RESUME_MAX_AGE"),
        ("resume_url = replace(resume_url, '%24select=', '%24select=Website%2C')", "endpoint and $select"),
        ("resume_url = replace(resume_url, 'sync/CRM/Accounts', 'sync/CRM/Contacts')", "endpoint and $select"),
    ],
)
def test_an_old_or_foreign_resume_point_starts_a_fresh_enumeration(
    db: sessionmaker[Session], connection_id: int, change: str, reason: str
) -> None:
    exact, _ = crashed_with_resume_point(db, connection_id)
    with db.begin() as session:
        session.execute(text(f"UPDATE sync_cursors SET {change} WHERE entity = 'accounts'"))
    with capture_logs() as logs:
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert exact.calls[0][1] == ACCOUNTS and exact.calls[0][3] is None  # not resumed
    assert exact.calls[0][2]["$filter"] == "Timestamp gt 0L"  # from the stored cursor
    discarded = [log for log in logs if log["event"] == "sync.resume_discarded"]
    assert discarded and reason in discarded[0]["reason"]
    assert account_timestamps(db) == list(range(100, 110))
    assert cursor(db, connection_id, "accounts") == 109
    assert progress_state(db, connection_id, "accounts") == (None, None)
