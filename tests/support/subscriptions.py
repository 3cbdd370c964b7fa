"""Webhook subscriptions as `exact-sync webhooks subscribe` leaves them in our copy (tests/worker/test_webhooks.py
and test_auto_subscribe.py drive the real command against the sandbox)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session, sessionmaker

from models import WebhookSubscription


def add_subscriptions(
    db: sessionmaker[Session], connection_id: int, topics: Iterable[str], divisions: Iterable[int]
) -> None:
    """One subscription per topic and division."""
    topics = list(topics)
    with db.begin() as session:
        for division in divisions:
            for topic in topics:
                session.add(
                    WebhookSubscription(
                        connection_id=connection_id, division=division, topic=topic, exact_id=f"{division}-{topic}",
                        callback_url="https://sync.example.com/webhooks/exact",
                    )
                )  # fmt: skip
