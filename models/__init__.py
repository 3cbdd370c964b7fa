"""Tables (typed SQLAlchemy 2) and their Alembic migrations. No I/O to Exact, no Celery."""

from models.actions import ActionRecord, ActionState
from models.base import Base
from models.feed import Change
from models.internal import (
    ConnectInvite,
    Connection,
    ConnectionStatus,
    ConnectionToken,
    Division,
    SyncCursor,
    SyncRun,
)
from models.ops import SyncEntityTotal, SyncRunTotal
from models.synced import Account, SalesInvoice, SalesInvoiceLine

__all__ = [
    "Account",
    "ActionRecord",
    "ActionState",
    "Base",
    "Change",
    "ConnectInvite",
    "Connection",
    "ConnectionStatus",
    "ConnectionToken",
    "Division",
    "SalesInvoice",
    "SalesInvoiceLine",
    "SyncCursor",
    "SyncEntityTotal",
    "SyncRun",
    "SyncRunTotal",
]
