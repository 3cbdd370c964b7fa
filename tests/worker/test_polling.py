"""Polling adapts to webhooks: healthy topics are only swept every few hours; a poll that finds changes no
webhook announced puts the topic back on the normal cadence, and `status` says why."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

import redis
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, WebhookEvent, WebhookSubscription
from syncs.core.settings import Settings
from syncs.entities.registry import DEFAULT_ENTITIES, ENTITIES
from syncs.sandbox.server import SandboxServer
from syncs.webhooks.topics import synced_topics
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock
from tests.worker.conftest import CURRENT
from tests.worker.test_scheduler import scheduler
from worker.polling import scheduled_entities
from worker.runs import execute_sync
from worker.scheduler import Due

SECOND = 124133
TOPICS = ("Accounts", "SalesInvoices")
EVERYTHING = list(DEFAULT_ENTITIES)


def all_but(*covered: str) -> list[str]:
    """The default entities but those covered by healthy webhooks (entities of other topics keep their cadence)."""
    return [name for name in EVERYTHING if name not in covered]


def subscribe_everything(db: sessionmaker[Session], connection_id: int, topics: Sequence[str] = TOPICS) -> None:
    """What `webhooks subscribe` leaves behind (tests/worker/test_webhooks.py drives the real thing)."""
    with db.begin() as session:
        for division in (CURRENT, SECOND):
            for topic in topics:
                session.add(
                    WebhookSubscription(
                        connection_id=connection_id, division=division, topic=topic, exact_id=f"{division}-{topic}",
                        callback_url="https://sync.example.com/webhooks/exact",
                    )
                )  # fmt: skip


def beat_run(settings: Settings, db: sessionmaker[Session], client: redis.Redis[bytes]) -> list[str] | None:
    """What beat would poll now, then that scheduled run."""
    planned = scheduled_entities(settings, db, client, "acme")
    if planned != []:
        assert execute_sync(settings, "acme", entities=planned, trigger="beat").status == "succeeded"
    return planned


def test_healthy_webhooks_leave_only_the_safety_sweep(
    sandbox_settings: Settings,
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    redis_client: redis.Redis[bytes],
    cli: CliInvoke,
) -> None:
    add_sandbox_connection("acme")
    assert scheduled_entities(sandbox_settings, db, redis_client, "acme") is None  # no webhooks: poll everything
    execute_sync(sandbox_settings, "acme")
    with db() as session:
        acme = session.query(Connection).filter_by(name="acme").one()
    subscribe_everything(db, acme.id)

    assert beat_run(sandbox_settings, db, redis_client) == EVERYTHING  # the first sweep is due
    assert beat_run(sandbox_settings, db, redis_client) == all_but("accounts", "sales_invoices")  # until the next sweep
    assert "webhooks healthy: polled every 6 h" in cli("status", "acme").output

    with db.begin() as session:  # one division loses its SalesInvoices subscription
        session.execute(delete(WebhookSubscription).where(
            WebhookSubscription.division == SECOND, WebhookSubscription.topic == "SalesInvoices"
        ))  # fmt: skip
    assert beat_run(sandbox_settings, db, redis_client) == all_but("accounts")
    assert "normal cadence: not subscribed in division 124133" in cli("status", "acme").output


def test_changes_no_webhook_announced_bring_the_normal_cadence_back(
    sandbox_settings: Settings,
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    redis_client: redis.Redis[bytes],
    cli: CliInvoke,
) -> None:
    add_sandbox_connection("acme")
    execute_sync(sandbox_settings, "acme")
    with db() as session:
        acme_id = session.query(Connection).filter_by(name="acme").one().id
    subscribe_everything(db, acme_id)
    state = sandbox.state

    # A change whose webhook is still waiting for its sync: the sweep merely came first.
    account = state.accounts(CURRENT)[0]["ID"]
    state.update_account(CURRENT, account, Name="Announced")
    with db.begin() as session:
        session.add(WebhookEvent(dedupe_key="e1", topic="Accounts", division=CURRENT, status="queued"))
    assert beat_run(sandbox_settings, db, redis_client) == EVERYTHING
    assert beat_run(sandbox_settings, db, redis_client) == all_but("accounts", "sales_invoices")

    # A change nobody announced, found by the next safety sweep.
    with db.begin() as session:
        session.execute(delete(WebhookEvent))
    redis_client.delete(*redis_client.keys(f"{sandbox_settings.redis_key_prefix}:webhook:swept:*"))
    state.update_account(CURRENT, account, Name="Missed By Webhooks")
    assert beat_run(sandbox_settings, db, redis_client) == EVERYTHING
    assert beat_run(sandbox_settings, db, redis_client) == all_but("sales_invoices")  # accounts polled again
    why = "normal cadence: a poll found 1 change(s) in accounts of division 124132 that no webhook announced"
    assert why in cli("status", "acme").output


def test_beat_sends_only_what_webhooks_do_not_cover(
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    redis_client: redis.Redis[bytes],
    queue_length: Callable[[], int],
) -> None:
    add_sandbox_connection("acme")
    execute_sync(sandbox_settings, "acme")
    with db() as session:
        acme_id = session.query(Connection).filter_by(name="acme").one().id
    subscribe_everything(db, acme_id, synced_topics())
    beat_run(sandbox_settings, db, redis_client)  # the sweep
    without_topic = [name for name in EVERYTHING if ENTITIES[name].entity.topic is None]
    queue = f"{sandbox_settings.celery_key_prefix}{sandbox_settings.celery_queue}"
    beat = scheduler(sandbox_settings, FakeClock())
    try:
        beat._send([Due(acme_id, "acme", 15)])
        assert queue_length() == 1
        assert sent_kwargs(redis_client.lpop(queue))["entities"] == without_topic  # covered topics left out
        redis_client.delete(*redis_client.keys(f"{sandbox_settings.redis_key_prefix}:webhook:swept:*"))
        beat._send([Due(acme_id, "acme", 15)])
        assert sent_kwargs(redis_client.lpop(queue))["entities"] == EVERYTHING  # the safety sweep is due again
    finally:
        beat.close()


def sent_kwargs(raw: bytes | None) -> dict[str, Any]:
    """The keyword arguments of a Celery message as kombu keeps it in Redis."""
    assert raw is not None
    body = json.loads(base64.b64decode(json.loads(raw)["body"]))
    return dict(body[1])
