"""Tables (typed SQLAlchemy 2) and their Alembic migrations. No I/O to Exact, no Celery.

The synced tables (`models.synced`, one per table of the entity catalog) are built when first used: importing
`models` gives exact-sync's own tables only, so commands that read nothing else (`status`, `connections list`)
start without building them. Whatever needs every table (Alembic, the drift test) uses `complete_metadata()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData

from models.actions import ActionRecord, ActionState
from models.base import Base
from models.feed import Change, OutgoingWebhook, WebhookDelivery
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
from models.webhooks import WebhookEvent, WebhookSubscription

if TYPE_CHECKING:
    from models.synced import Account, SalesInvoice, SalesInvoiceLine

SYNCED_NAMES = frozenset({"Account", "SalesInvoice", "SalesInvoiceLine"})


def complete_metadata() -> MetaData:
    """`Base.metadata` with every table, the synced ones included."""
    from models import synced  # noqa: F401  (registers the synced tables)

    return Base.metadata


def __getattr__(name: str) -> Any:
    """`from models import Account` builds the synced tables on first use."""
    if name in SYNCED_NAMES:
        from models import synced

        return getattr(synced, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "OutgoingWebhook",
    "SalesInvoice",
    "SalesInvoiceLine",
    "SyncCursor",
    "SyncEntityTotal",
    "SyncRun",
    "SyncRunTotal",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "complete_metadata",
]
