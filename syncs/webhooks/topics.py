"""Exact webhook topics -> the synced entities a change in that topic concerns.

Topic strings from /work/shared/exact-entities.md ("Webhook topics"; PQ WebhookSubscription.php, PION). An
event names the topic, not the entity: `SalesInvoices` fires for headers and lines alike, and a Delete action
is picked up by the deletions stream, which every targeted sync runs as well.
"""

from __future__ import annotations

from typing import Final

from syncs.entities import ENTITIES

# Topic strings attested for Exact (exact-entities.md "Webhook topics"): the 14 of the forum list, and 6 seen
# in a live app's subscriptions.
KNOWN_TOPICS: Final = (
    "Accounts", "Contacts", "Items", "StockPositions", "FinancialTransactions", "SalesOrders", "SalesInvoices",
    "PurchaseOrders", "GoodsDeliveries", "CostTransactions", "TimeTransactions", "Documents", "Quotations",
    "BankAccounts", "PurchaseEntries", "SalesEntries", "BankEntries", "CashEntries", "GeneralJournalEntries",
    "Subscriptions",
)  # fmt: skip

# Until the entity declarations carry their topic, the mapping lives here (entity names as in ENTITIES).
TOPIC_ENTITIES: Final[dict[str, tuple[str, ...]]] = {
    "Accounts": ("accounts",),
    "SalesInvoices": ("sales_invoices",),
}


def entities_for(topic: str) -> list[str]:
    """The synced entities behind `topic` (empty when we sync none of them)."""
    return [name for name in TOPIC_ENTITIES.get(topic, ()) if name in ENTITIES]


def synced_topics() -> list[str]:
    """Topics with at least one synced entity: what automatic subscription subscribes to."""
    return [topic for topic in TOPIC_ENTITIES if entities_for(topic)]
