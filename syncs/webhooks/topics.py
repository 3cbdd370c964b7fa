"""Exact webhook topics -> the synced entities a change in that topic concerns (each declaration's `topic`).

Topic strings from /work/shared/exact-entities.md ("Webhook topics"; PQ WebhookSubscription.php, PION). An
event names the topic, not the entity: `SalesInvoices` fires for headers and lines alike, and a Delete action
is picked up by the deletions stream, which every targeted sync runs as well.
"""

from __future__ import annotations

from typing import Final

from syncs.entities.registry import DEFAULT_ENTITIES, ENTITIES

# Topic strings attested for Exact (exact-entities.md "Webhook topics"): the 14 of the forum list, and 6 seen
# in a live app's subscriptions.
KNOWN_TOPICS: Final = (
    "Accounts", "Contacts", "Items", "StockPositions", "FinancialTransactions", "SalesOrders", "SalesInvoices",
    "PurchaseOrders", "GoodsDeliveries", "CostTransactions", "TimeTransactions", "Documents", "Quotations",
    "BankAccounts", "PurchaseEntries", "SalesEntries", "BankEntries", "CashEntries", "GeneralJournalEntries",
    "Subscriptions",
)  # fmt: skip


def entities_for(topic: str) -> list[str]:
    """The synced entities (a run's default set) whose declaration names `topic` (empty when none)."""
    return [name for name in DEFAULT_ENTITIES if ENTITIES[name].entity.topic == topic]


def synced_topics() -> list[str]:
    """Topics of the synced entities: what `webhooks subscribe` subscribes to by default."""
    return list(dict.fromkeys(t for name in DEFAULT_ENTITIES if (t := ENTITIES[name].entity.topic) is not None))
