from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, SalesInvoice, SalesInvoiceLine
from syncs.core.errors import MalformedResponseError
from syncs.engine.streams import SyncCounts, sync_division
from syncs.entities.registry import ENTITIES
from syncs.exact.odata import Page
from tests.engine.support import DIVISION, FakeExact, recorded_accounts, write_deletions
from tests.engine.test_sales_invoices import INV_A, INV_B, line_row


def deleted(key: str, entity_type: int, timestamp: int, date: str | None = None) -> dict[str, Any]:
    return {
        "__metadata": {"uri": "u", "type": "Exact.Web.Api.Models.Sync.Deleted"},
        "ID": str(uuid.uuid4()),
        "Timestamp": timestamp,
        "DeletedBy": str(uuid.uuid4()),
        "DeletedDate": date,
        "Division": DIVISION,
        "EntityKey": key,
        "EntityType": entity_type,
    }


class SelectingExact(FakeExact):
    """Serves only the fields named in $select, as Exact does: a field the engine forgets to ask for is missing."""

    def pages(
        self, division: int, endpoint: str, params: Mapping[str, str], *, resume_url: str | None = None
    ) -> Iterator[Page]:
        fields = params["$select"].split(",")
        for page in super().pages(division, endpoint, params, resume_url=resume_url):
            yield Page([{k: row[k] for k in fields if k in row} for row in page.rows], page.next_url)


def test_the_deletions_request_selects_what_marking_a_row_needs(db: sessionmaker[Session], connection_id: int) -> None:
    rows = recorded_accounts()[:2]
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, rows)
    exact = SelectingExact()
    exact.add("sync/Deleted", deleted(rows[0]["ID"], 2, 5000, "/Date(1721037600000)/"))
    assert sync_division(db, exact, connection_id, DIVISION, []) == SyncCounts(deleted=1)
    [(_, endpoint, params, _)] = exact.calls
    assert endpoint == "sync/Deleted"
    assert set(params["$select"].split(",")) == {
        "Timestamp", "DeletedBy", "DeletedDate", "Division", "EntityKey", "EntityType", "ID",
    }  # fmt: skip
    with db() as session:
        marks = {a.id: a.deleted_at for a in session.scalars(select(Account))}
    # DeletedDate was asked for and used: 2024-07-15 10:00 Amsterdam = 08:00 UTC.
    assert marks == {uuid.UUID(rows[0]["ID"]): datetime(2024, 7, 15, 8, 0, tzinfo=UTC), uuid.UUID(rows[1]["ID"]): None}


def test_accounts_are_marked_unless_newer(db: sessionmaker[Session]) -> None:
    rows = recorded_accounts()[:3]  # Timestamps 1000, 1001, 1002
    with db.begin() as session:
        ENTITIES["accounts"].write_page(session, DIVISION, rows)
    page = [
        deleted(rows[0]["ID"], 2, 1000, "/Date(1721037600000)/"),  # 2024-07-15 10:00 Amsterdam = 08:00 UTC
        deleted(rows[1]["ID"], 2, 1000),  # the account (1001) changed after this deletion: keep it
        deleted(rows[2]["ID"], 2, 2000),  # no DeletedDate: now()
        deleted(str(uuid.uuid4()), 2, 2001),  # never synced: nothing to mark
        deleted(str(uuid.uuid4()), 36, 3000),  # ShopOrders: not synced, skipped but counted in the cursor
        deleted("not-a-guid-but-skipped", 37, 3001),
    ]
    with db.begin() as session:
        result = write_deletions(session, DIVISION, page)
    assert (result.deleted, result.max_timestamp) == (2, 3001)
    with db() as session:
        marks = {a.id: a.deleted_at for a in session.scalars(select(Account))}
    assert marks[uuid.UUID(rows[0]["ID"])] == datetime(2024, 7, 15, 8, 0, tzinfo=UTC)
    assert marks[uuid.UUID(rows[1]["ID"])] is None
    assert marks[uuid.UUID(rows[2]["ID"])] is not None
    with db.begin() as session:  # applying the same page again marks nothing more
        assert write_deletions(session, DIVISION, page).deleted == 0


def seed_invoices(db: sessionmaker[Session]) -> None:
    page = [
        line_row(INV_A, 1, 10, "100", "21"),
        line_row(INV_A, 2, 10, "50", "10"),
        line_row(INV_B, 1, 10, "7", "1"),
        line_row(INV_B, 2, 10, "3", "0"),
    ]
    with db.begin() as session:
        ENTITIES["sales_invoices"].write_page(session, DIVISION, page)


def live(session: Session) -> set[str]:
    found = {
        f"h{str(h.id)[:1]}" for h in session.scalars(select(SalesInvoice).where(SalesInvoice.deleted_at.is_(None)))
    }
    lines = session.scalars(select(SalesInvoiceLine).where(SalesInvoiceLine.deleted_at.is_(None)))
    return found | {f"l{str(line.invoice_id)[:1]}{line.line_number}" for line in lines}


def test_invoice_key_marks_the_invoice_and_its_lines(db: sessionmaker[Session]) -> None:
    seed_invoices(db)
    with db.begin() as session:
        result = write_deletions(session, DIVISION, [deleted(INV_A, 13, 20)])
    assert result.deleted == 3
    with db() as session:
        assert live(session) == {"hb", "lb1", "lb2"}
        header = session.get_one(SalesInvoice, (DIVISION, uuid.UUID(INV_A)))
        assert header.amount_dc == Decimal(150)  # a deleted invoice keeps its last totals


def test_line_key_marks_one_line_and_recomputes_totals(db: sessionmaker[Session]) -> None:
    seed_invoices(db)
    line_key = line_row(INV_B, 1, 0, "0", "0")["ID"]
    with db.begin() as session:
        result = write_deletions(session, DIVISION, [deleted(line_key, 13, 20)])
    assert result.deleted == 1
    with db() as session:
        assert live(session) == {"ha", "la1", "la2", "hb", "lb2"}
        header = session.get_one(SalesInvoice, (DIVISION, uuid.UUID(INV_B)))
        assert (header.amount_dc, header.vat_amount_dc, header.vat_amount_fc) == (
            Decimal(3),
            Decimal(0),
            Decimal(0),
        )


def test_invoice_deletion_older_than_the_rows_is_ignored(db: sessionmaker[Session]) -> None:
    seed_invoices(db)
    with db.begin() as session:
        result = write_deletions(session, DIVISION, [deleted(INV_A, 13, 9)])
    assert result.deleted == 0
    with db() as session:
        assert live(session) == {"ha", "la1", "la2", "hb", "lb1", "lb2"}


def test_malformed_deletion_fails(db: sessionmaker[Session]) -> None:
    with pytest.raises(MalformedResponseError, match="field EntityKey"), db.begin() as session:
        write_deletions(session, DIVISION, [deleted("oops", 2, 5)])
    with pytest.raises(MalformedResponseError, match="Timestamp"), db.begin() as session:
        write_deletions(session, DIVISION, [{**deleted(INV_A, 13, 5), "Timestamp": None}])
