"""Outgoing webhooks: after each run, one signed POST per entity that changed, to the connection's URL.

The body is JSON (below); the headers carry `X-Exact-Sync-Delivery` (the delivery id: receivers can ignore a
repeat) and `X-Exact-Sync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` keyed with
OUTGOING_WEBHOOK_SECRET; a receiver recomputes it over the raw body and refuses old timestamps (replays).
Every delivery is a `webhook_deliveries` row (status pending / delivered / failed, attempts, last error), made in
the run's process and sent by the Celery task `exact.deliver_webhook`, retried with exponential backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models import Change, Connection, OutgoingWebhook, WebhookDelivery

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
SIGNATURE_HEADER = "X-Exact-Sync-Signature"
DELIVERY_HEADER = "X-Exact-Sync-Delivery"
MAX_ERROR = 500


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def feed_position(session: Session) -> int:
    """The newest change feed `seq` now: a run announces the changes after it."""
    return int(session.scalar(select(func.coalesce(func.max(Change.seq), 0))) or 0)


def record_deliveries(
    session: Session, connection_id: int, run_id: int, divisions: Sequence[int], after_seq: int
) -> list[int]:
    """One pending delivery per entity this run changed (its changes after `after_seq` in its divisions), when
    the connection has an outgoing URL; returns their ids."""
    target = session.get(OutgoingWebhook, connection_id)
    if target is None or not divisions:
        return []
    name = session.get_one(Connection, connection_id).name
    rows = session.execute(
        select(
            Change.entity,
            Change.division,
            func.sum(Change.inserted),
            func.sum(Change.updated),
            func.sum(Change.deleted),
            func.max(Change.cursor),
            func.min(Change.seq),
            func.max(Change.seq),
        )
        .where(Change.connection_id == connection_id, Change.seq > after_seq, Change.division.in_(divisions))
        .group_by(Change.entity, Change.division)
        .order_by(Change.entity, Change.division)
    ).all()
    per_entity: dict[str, list[dict[str, Any]]] = {}
    for entity, division, inserted, updated, deleted, cursor, first, last in rows:
        per_entity.setdefault(entity, []).append(
            {"division": division, "inserted": int(inserted), "updated": int(updated), "deleted": int(deleted),
             "cursor": int(cursor), "first_seq": int(first), "last_seq": int(last)}
        )  # fmt: skip
    ids = []
    for entity, parts in per_entity.items():
        payload = {
            "event": "sync.changed",
            "connection": name,
            "run_id": run_id,
            "entity": entity,
            "inserted": sum(p["inserted"] for p in parts),
            "updated": sum(p["updated"] for p in parts),
            "deleted": sum(p["deleted"] for p in parts),
            "divisions": parts,
        }
        delivery = WebhookDelivery(
            connection_id=connection_id,
            run_id=run_id,
            entity=entity,
            url=target.url,
            payload=json.dumps(payload, separators=(",", ":")),
            status=PENDING,
        )
        session.add(delivery)
        session.flush()
        ids.append(delivery.id)
    return ids


@dataclass(frozen=True)
class Attempted:
    status: str  # delivered, pending (try again), failed (gave up)
    attempts: int


def attempt(session: Session, delivery_id: int, secret: str | None, max_attempts: int, timeout: float) -> Attempted:
    """POST one delivery and record the outcome (in the caller's transaction); a 2xx is delivered."""
    delivery = session.get_one(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery.status == DELIVERED:
        return Attempted(DELIVERED, delivery.attempts)
    delivery.attempts += 1
    delivery.last_attempt_at = func.now()
    error = _post(delivery, secret, timeout)
    if error is None:
        delivery.status, delivery.last_error, delivery.delivered_at = DELIVERED, None, func.now()
    else:
        delivery.last_error = error[:MAX_ERROR]
        delivery.status = FAILED if delivery.attempts >= max_attempts else PENDING
    return Attempted(delivery.status, delivery.attempts)


def _post(delivery: WebhookDelivery, secret: str | None, timeout: float) -> str | None:
    """None when the receiver took it, else why not (never the body)."""
    if secret is None:
        return "OUTGOING_WEBHOOK_SECRET is not set: deliveries cannot be signed"
    body = delivery.payload.encode()
    headers = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: str(delivery.id),
        SIGNATURE_HEADER: signature(secret, body, int(time.time())),
    }
    try:
        response = httpx.post(delivery.url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    delivery.last_status = response.status_code
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


def set_outgoing_url(session: Session, connection_id: int, url: str | None) -> None:
    session.execute(delete(OutgoingWebhook).where(OutgoingWebhook.connection_id == connection_id))
    if url is not None:
        session.add(OutgoingWebhook(connection_id=connection_id, url=url))


def recent_deliveries(
    session: Session, name: str | None, status: str | None, limit: int
) -> list[tuple[str, WebhookDelivery]]:
    query = (
        select(Connection.name, WebhookDelivery)
        .join(Connection, Connection.id == WebhookDelivery.connection_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if name is not None:
        query = query.where(Connection.name == name)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return [(str(n), d) for n, d in session.execute(query).all()]


def reset_deliveries(session: Session, ids: Sequence[int], failed_of: str | None) -> list[int]:
    """Make deliveries pending again with a fresh attempt budget (the given ids, or every failed one of the
    connection named `failed_of`); returns their ids."""
    query = update(WebhookDelivery).values(status=PENDING, attempts=0).returning(WebhookDelivery.id)
    if failed_of is not None:
        connection_id = select(Connection.id).where(Connection.name == failed_of).scalar_subquery()
        query = query.where(WebhookDelivery.connection_id == connection_id, WebhookDelivery.status == FAILED)
    else:
        query = query.where(WebhookDelivery.id.in_(ids))
    return sorted(int(i) for i in session.scalars(query))
