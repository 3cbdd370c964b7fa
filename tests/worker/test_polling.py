"""Polling adapts to webhooks: healthy topics are only swept every few hours; a poll that finds changes no
webhook announced puts the topic back on the normal cadence, and `status` says why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, WebhookEvent, WebhookSubscription
from syncs.core.settings import Settings
from syncs.sandbox.server import SandboxServer
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock
from tests.worker.conftest import CURRENT
from tests.worker.test_scheduler import scheduler
from worker.polling import scheduled_entities
from worker.runs import execute_sync

SECOND = 124133
TOPICS = ("Accounts", "SalesInvoices")


def subscribe_everything(db: sessionmaker[Session], connection_id: int) -> None:
    """What `webhooks subscribe` leaves behind (tests/worker/test_webhooks.py drives the real thing)."""
    with db.begin() as session:
        for division in (CURRENT, SECOND):
            for topic in TOPICS:
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

    assert beat_run(sandbox_settings, db, redis_client) == ["accounts", "sales_invoices"]  # the first sweep is due
    assert beat_run(sandbox_settings, db, redis_client) == []  # covered until the next sweep
    assert "webhooks healthy: polled every 6 h" in cli("status", "acme").output

    with db.begin() as session:  # one division loses its SalesInvoices subscription
        session.execute(delete(WebhookSubscription).where(
            WebhookSubscription.division == SECOND, WebhookSubscription.topic == "SalesInvoices"
        ))  # fmt: skip
    assert beat_run(sandbox_settings, db, redis_client) == ["sales_invoices"]
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
    assert beat_run(sandbox_settings, db, redis_client) == ["accounts", "sales_invoices"]
    assert beat_run(sandbox_settings, db, redis_client) == []

    # A change nobody announced, found by the next safety sweep.
    with db.begin() as session:
        session.execute(delete(WebhookEvent))
    redis_client.delete(*redis_client.keys(f"{sandbox_settings.redis_key_prefix}:webhook:swept:*"))
    state.update_account(CURRENT, account, Name="Missed By Webhooks")
    assert beat_run(sandbox_settings, db, redis_client) == ["accounts", "sales_invoices"]
    assert beat_run(sandbox_settings, db, redis_client) == ["accounts"]  # normal cadence again, invoices covered
    why = "normal cadence: a poll found 1 change(s) in accounts of division 124132 that no webhook announced"
    assert why in cli("status", "acme").output


def test_beat_sends_nothing_while_webhooks_cover_every_entity(
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
    subscribe_everything(db, acme_id)
    beat_run(sandbox_settings, db, redis_client)  # the sweep
    beat = scheduler(sandbox_settings, FakeClock())
    try:
        beat._send("acme", 15)
        assert queue_length() == 0
        redis_client.delete(*redis_client.keys(f"{sandbox_settings.redis_key_prefix}:webhook:swept:*"))
        beat._send("acme", 15)
        assert queue_length() == 1  # the safety sweep is due again
    finally:
        beat.close()
