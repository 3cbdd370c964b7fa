"""Projects, time transactions, employees."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Output, Split, Strategy, TableDecl, fields

PROJECTS = TableDecl(
    "projects",
    ("ID",),
    fields(
        text="Code Description",
        int="Type",
        guid="Account Manager",
        date="StartDate EndDate",
        number="BudgetedAmount",
        bool="BlockEntry",
        datetime="Modified",
        index="Account",
    ),
    "Projects; `type` 1 campaign, 2 fixed price, 3 time and material, 4 non billable, 5 prepaid.",
)
TIME_TRANSACTIONS = TableDecl(
    "time_transactions",
    ("ID",),
    fields(
        int="Type HourStatus",
        date="Date",
        guid="Employee Project Account Item",
        number="Quantity PriceFC AmountFC",
        datetime="Modified",
        index="Employee Project Account Item",
    ),
    "Hours (Type 1 rows of sync/Project/TimeCostTransactions; cost rows, Type 2, are not kept).",
)
EMPLOYEES = TableDecl(
    "employees",
    ("ID",),
    fields(
        text="Code FullName FirstName LastName Email",
        int="HID",
        bool="IsActive",
        date="StartDate EndDate",
        guid="User",
        datetime="Modified",
    ),
    "Employees (payroll).",
)

ENTITIES = (
    Entity(
        "projects", "sync/Project/Projects", Strategy.SYNC, (Output(PROJECTS),), Cadence.MASTER,
        frozenset({21}), None, "PIS Sync/Project/Projects.php",
    ),
    Entity(
        "time_transactions", "sync/Project/TimeCostTransactions", Strategy.SYNC,
        (Output(TIME_TRANSACTIONS, Split(where=("Type", "1"))),), Cadence.MASTER, frozenset({14}),
        "TimeTransactions", "PIS Sync/Project/TimeCostTransactions.php (Type 1 time, 2 cost)",
    ),
    Entity(
        "employees", "sync/Payroll/Employees", Strategy.SYNC, (Output(EMPLOYEES),), Cadence.REFERENCE,
        frozenset({42}), None, "PIS Sync/Payroll/Employees.php",
    ),
)  # fmt: skip
