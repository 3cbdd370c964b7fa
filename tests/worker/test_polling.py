"""Polling adapts to webhooks: healthy topics are only swept every few hours while the other entities keep their
cadence; a poll that finds changes no webhook announced puts the topic back on the normal cadence, and `status`
says why. Runs on a FakeClock: the sweep and the cadence are decided from it, not from real time."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from bench.idle_cost import beat_run as planned_run
from models import Connection, WebhookEvent, WebhookSubscription
from syncs.core.clock import to_datetime
from syncs.core.settings import Settings
from syncs.engine.cadence import set_entity
from syncs.entities.declaration import Cadence
from syncs.entities.registry import DEFAULT_ENTITIES, ENTITIES
from syncs.sandbox.server import SandboxServer
from syncs.sandbox.state import SandboxConfig, SandboxState
from syncs.webhooks.topics import synced_topics
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock
from tests.support.subscriptions import add_subscriptions
from tests.worker.conftest import CURRENT
from tests.worker.test_scheduler import scheduler
from worker.polling import beat_plan
from worker.runs import execute_sync
from worker.scheduler import Due

SECOND = 124133
TOPICS = ("Accounts", "SalesInvoices")
QUARTER = 15 * 60
HOUR = 3600


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[SandboxServer]:
    """The sandbox on the tests' clock, so that its tokens expire as the runs' clock says."""
    server = SandboxServer(SandboxState(SandboxConfig(minutely_limit=None, daily_limit=None), clock=clock))
    server.start()
    yield server
    server.stop()


def of_cadence(cadence: Cadence, *but: str) -> set[str]:
    return {name for name in DEFAULT_ENTITIES if ENTITIES[name].cadence is cadence and name not in but}


def subscribe_everything(db: sessionmaker[Session], connection_id: int, topics: Sequence[str] = TOPICS) -> None:
    add_subscriptions(db, connection_id, topics, (CURRENT, SECOND))


@pytest.fixture
def acme(sandbox_settings: Settings, db: sessionmaker[Session], add_sandbox_connection: Callable[..., Any],
         clock: FakeClock) -> int:  # fmt: skip
    """Connection acme with every entity read once at the clock's time (no webhooks yet); its id."""
    add_sandbox_connection("acme")
    assert execute_sync(sandbox_settings, "acme", clock=clock).status == "succeeded"
    with db() as session:
        return session.query(Connection).filter_by(name="acme").one().id


@pytest.fixture
def beat_run(
    sandbox_settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis[bytes], clock: FakeClock
) -> Callable[[], set[str] | None]:
    """What beat would plan now, then that scheduled run: the entity streams it read (None: beat sends no run)."""

    def run() -> set[str] | None:
        outcome = planned_run(sandbox_settings, db, redis_client, clock, "acme")
        if outcome is None:
            return None
        assert outcome.status == "succeeded", outcome
        return set(outcome.rows_by_entity) - {"deleted"}

    return run


# Read by every scheduled run while Accounts and SalesInvoices are covered: the other transactional entities.
EVERY_RUN = of_cadence(Cadence.TRANSACTIONAL, "accounts", "sales_invoices")


def test_healthy_webhooks_leave_only_the_safety_sweep_and_the_rest_keep_their_cadence(
    acme: int,
    beat_run: Callable[[], set[str] | None],
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    redis_client: redis.Redis[bytes],
    cli: CliInvoke,
    clock: FakeClock,
) -> None:
    assert beat_plan(sandbox_settings, db, redis_client, "acme", to_datetime(clock.now())).covered == []
    subscribe_everything(db, acme)

    clock.advance(QUARTER)  # covered entities wait for the sweep; master and reference data for their cadence
    assert beat_run() == EVERY_RUN
    clock.advance(4 * HOUR - QUARTER)
    assert beat_run() == EVERY_RUN | of_cadence(Cadence.MASTER)
    clock.advance(2 * HOUR)  # the safety sweep of the covered entities
    assert beat_run() == EVERY_RUN | {"accounts", "sales_invoices"}
    clock.advance(QUARTER)
    assert beat_run() == EVERY_RUN
    assert "webhooks healthy: polled every 6 h" in cli("status", "acme").output

    with db.begin() as session:  # one division loses its SalesInvoices subscription
        session.execute(delete(WebhookSubscription).where(
            WebhookSubscription.division == SECOND, WebhookSubscription.topic == "SalesInvoices"
        ))  # fmt: skip
    clock.advance(QUARTER)
    assert beat_run() == EVERY_RUN | {"sales_invoices"}
    assert "normal cadence: not subscribed in division 124133" in cli("status", "acme").output


def test_changes_no_webhook_announced_bring_the_normal_cadence_back(
    acme: int,
    beat_run: Callable[[], set[str] | None],
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    cli: CliInvoke,
    clock: FakeClock,
) -> None:
    subscribe_everything(db, acme)
    state = sandbox.state

    # A change whose webhook is still waiting for its sync: the sweep merely came first.
    account = state.accounts(CURRENT)[0]["ID"]
    state.update_account(CURRENT, account, Name="Announced")
    with db.begin() as session:
        session.add(WebhookEvent(dedupe_key="e1", topic="Accounts", division=CURRENT, status="queued"))
    clock.advance(6 * HOUR)
    assert "accounts" in (beat_run() or ())
    clock.advance(QUARTER)
    assert beat_run() == EVERY_RUN

    # A change nobody announced, found by the next safety sweep.
    with db.begin() as session:
        session.execute(delete(WebhookEvent))
    state.update_account(CURRENT, account, Name="Missed By Webhooks")
    clock.advance(6 * HOUR)
    assert "accounts" in (beat_run() or ())
    clock.advance(QUARTER)
    assert beat_run() == EVERY_RUN | {"accounts"}  # polled again
    why = "normal cadence: a poll found 1 change(s) in accounts of division 124132 that no webhook announced"
    assert why in cli("status", "acme").output


def test_beat_names_what_webhooks_cover_and_sends_nothing_when_they_cover_all(
    acme: int,
    sandbox_settings: Settings,
    db: sessionmaker[Session],
    redis_client: redis.Redis[bytes],
    queue_length: Callable[[], int],
    clock: FakeClock,
) -> None:
    subscribe_everything(db, acme, synced_topics())
    with_topic = [name for name in DEFAULT_ENTITIES if ENTITIES[name].entity.topic is not None]
    queue = f"{sandbox_settings.celery_key_prefix}{sandbox_settings.celery_queue}"
    beat = scheduler(sandbox_settings, clock)
    try:
        clock.advance(QUARTER)
        beat._send([Due(acme, "acme", 15)])
        sent = sent_kwargs(redis_client.lpop(queue))
        assert sent["covered"] == with_topic and "entities" not in sent  # the rest keep their cadence

        with db.begin() as session:  # only covered entities left: nothing is due between sweeps
            for name in DEFAULT_ENTITIES:
                if name not in with_topic:
                    set_entity(session, acme, name, enabled=False, every_minutes=None)
        beat._send([Due(acme, "acme", 15)])
        assert queue_length() == 0
        clock.advance(6 * HOUR)  # the safety sweep is due
        beat._send([Due(acme, "acme", 15)])
        assert sent_kwargs(redis_client.lpop(queue))["covered"] == with_topic
    finally:
        beat.close()


def sent_kwargs(raw: bytes | None) -> dict[str, Any]:
    """The keyword arguments of a Celery message as kombu keeps it in Redis."""
    assert raw is not None
    body = json.loads(base64.b64decode(json.loads(raw)["body"]))
    return dict(body[1])
