"""The company list: `exact_divisions` (our own bookkeeping table is `divisions`)."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Output, Strategy, TableDecl, fields

EXACT_DIVISIONS = TableDecl(
    "exact_divisions",
    ("Code",),
    fields(
        int="Code Status BlockingStatus",
        bigint="Hid",
        text="Description Currency Country",
        bool="Current IsMainDivision",
        datetime="DivisionMoveDate Modified",
    ),
    "Each synced division's own system/Divisions record (`division` = its Code; `id` a name-based UUID of the "
    "Code, since a division has no GUID). A changed `division_move_date` means Exact regenerated every "
    "Timestamp: the division is then resynced in full.",
)

ENTITIES = (
    Entity(
        "exact_divisions", "system/Divisions", Strategy.SNAPSHOT, (Output(EXACT_DIVISIONS),), Cadence.REFERENCE,
        source="PIS System/Divisions.php; NG syncs/divisions.ts", filter="Code eq {division}",
        hook="division_moved",
    ),
)  # fmt: skip
