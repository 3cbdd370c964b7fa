"""Managing Exact webhook subscriptions of one division: list, subscribe (idempotent), unsubscribe.

Exact's rules (its WebhookSubscriptions documentation; /work/shared/exact-online.md): the callback must be
HTTPS, its domain must match the redirect URI registered with the app, a subscription cannot be updated (only
deleted and made again), and right after a subscription is made Exact POSTs an empty body to the callback,
which must answer 200. Topic strings: syncs/webhooks/topics.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from sqlalchemy import delete
from sqlalchemy.orm import Session

from models import WebhookSubscription
from syncs.core.errors import MalformedResponseError
from syncs.exact.odata import decode_json

ENDPOINT = "webhooks/WebhookSubscriptions"


class SubscriptionApi(Protocol):
    """What these functions need of `syncs.exact.client.ExactClient`."""

    def get_json(self, path_or_url: str, params: Any = None, division: int | None = None) -> Any: ...

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        division: int | None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> httpx.Response: ...


@dataclass(frozen=True)
class Subscription:
    id: str
    topic: str
    callback_url: str


def listed(client: SubscriptionApi, division: int) -> list[Subscription]:
    body = client.get_json(ENDPOINT, division=division)
    rows = body.get("d", {}).get("results") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise MalformedResponseError(f"{ENDPOINT} of division {division}: no d.results list")
    return [_subscription(row) for row in rows]


def _subscription(row: Any) -> Subscription:
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("ID", "Topic", "CallbackURL")):
        raise MalformedResponseError(f"{ENDPOINT}: a subscription without ID, Topic or CallbackURL")
    return Subscription(row["ID"], row["Topic"], row["CallbackURL"])


def subscribe(
    client: SubscriptionApi, division: int, topics: Sequence[str], callback_url: str
) -> tuple[list[Subscription], list[Subscription]]:
    """Subscribe each topic with `callback_url` where that pair is missing (so running it again is harmless):
    (every subscription of the division now, those made by this call)."""
    now = listed(client, division)
    existing = {(s.topic, s.callback_url) for s in now}
    made: list[Subscription] = []
    for topic in dict.fromkeys(topics):
        if (topic, callback_url) in existing:
            continue
        response = client.request(
            "POST", ENDPOINT, division=division, body={"CallbackURL": callback_url, "Topic": topic}
        )
        body = decode_json(response.content, ENDPOINT)
        made.append(_subscription(body.get("d") if isinstance(body, dict) else None))
    return now + made, made


def unsubscribe(
    client: SubscriptionApi, division: int, topics: Sequence[str] | None
) -> tuple[list[Subscription], list[Subscription]]:
    """Delete the division's subscriptions of `topics` (all when None): (those left, those deleted)."""
    now = listed(client, division)
    gone = [s for s in now if topics is None or s.topic in topics]
    for subscription in gone:
        client.request("DELETE", f"{ENDPOINT}(guid'{subscription.id}')", division=division)
    return [s for s in now if s not in gone], gone


def remember(session: Session, connection_id: int, division: int, found: Sequence[Subscription]) -> None:
    """Our copy of the division's subscriptions becomes `found` (what Exact listed or we just made)."""
    session.execute(
        delete(WebhookSubscription).where(
            WebhookSubscription.connection_id == connection_id, WebhookSubscription.division == division
        )
    )
    for subscription in {s.topic: s for s in found}.values():
        session.add(
            WebhookSubscription(
                connection_id=connection_id,
                division=division,
                topic=subscription.topic,
                exact_id=subscription.id,
                callback_url=subscription.callback_url,
            )
        )
