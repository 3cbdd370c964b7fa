"""Special behaviour an entity declaration names (`Entity.hook`): small functions run after a page or a deletion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Uuid

from syncs.entities.base import Record
from syncs.entities.catalog import TABLES
from syncs.entities.writer import BeforeHook, Hook

SYNCED_TABLE_NAMES = tuple(sorted(TABLES))

# A correlated subquery per invoice keeps to the (division, invoice_id) index even when the planner's statistics
# are stale (a join over unnest(:ids) made it scan every line on every page, slowing pages as the table grew).
_RECOMPUTE_TOTALS = text(
    """
    UPDATE sales_invoices AS si
    SET (amount_dc, amount_fc, vat_amount_dc, vat_amount_fc) = (
        SELECT COALESCE(sum(l.amount_dc), 0), COALESCE(sum(l.amount_fc), 0), COALESCE(sum(l.vat_amount_dc), 0),
               COALESCE(sum(l.vat_amount_fc), 0)
        FROM sales_invoice_lines AS l
        WHERE l.division = si.division AND l.invoice_id = si.id AND l.deleted_at IS NULL
    )
    WHERE si.division = :division AND si.id = ANY(:ids) AND si.deleted_at IS NULL
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid())))


def invoice_totals(session: Session, division: int, invoice_ids: set[Any]) -> None:
    """Set each live invoice's amounts to the sums over its live lines (0 when none is left)."""
    if invoice_ids:
        session.execute(_RECOMPUTE_TOTALS, {"division": division, "ids": sorted(invoice_ids, key=str)})


def division_moved(session: Session, division: int, records: list[Record]) -> None:
    """A changed DivisionMoveDate means Exact regenerated every Timestamp of the division (PIS
    System/Divisions.php): every stream of the division starts again from 0, and the stored rows' Timestamps are
    set to 0 so that the regenerated ones (lower or higher) overwrite them; the next runs read everything."""
    moved = False
    for record in records:
        stored = session.execute(
            text("SELECT division_move_date FROM exact_divisions WHERE division = :d AND id = :id"),
            {"d": division, "id": record["id"]},
        ).one_or_none()
        moved = moved or (stored is not None and stored[0] != record["division_move_date"])
    if not moved:
        return
    session.execute(
        text(
            "UPDATE sync_cursors SET timestamp = 0, resume_url = NULL, pending_timestamp = NULL, checked_at = NULL"
            " WHERE division = :d"
        ),
        {"d": division},
    )
    for table in SYNCED_TABLE_NAMES:
        session.execute(
            text(f'UPDATE "{table}" SET timestamp = 0 WHERE division = :d AND timestamp > 0'), {"d": division}
        )


HOOKS: dict[str, Hook] = {"invoice_totals": invoice_totals}
BEFORE_HOOKS: dict[str, BeforeHook] = {"division_moved": division_moved}
