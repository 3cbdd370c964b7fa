"""Receiving Exact webhooks on `serve`: signatures, replays, unknown targets, bursts, the broker down, and a
real worker turning an event into rows without waiting for the poll."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from models import Account, SyncRun, WebhookEvent
from syncs.core.settings import Settings
from syncs.sandbox.server import SandboxServer
from syncs.webhooks.signature import sign
from tests.lifecycle.conftest import ServerThread
from tests.support.cli import CliInvoke
from tests.support.net import free_port
from tests.worker.conftest import CURRENT, stop, wait_for
from worker.app import create_app
from worker.runs import execute_sync
from worker.web import create_web_app
from worker.webhook_dispatch import Dispatcher, redis_for_webhooks

SECRET = "webhook-test-secret"
SECOND = 124133
MARKER = "Private Customer Data 4711"  # must never reach the logs


@pytest.fixture
def hook_settings(sandbox_settings: Settings) -> Settings:
    update = {"exact_webhook_secret": SecretStr(SECRET), "webhook_debounce_seconds": 0.5}
    return sandbox_settings.model_copy(update=update)


@pytest.fixture
def synced_once(hook_settings: Settings, add_sandbox_connection: Callable[..., Any]) -> None:
    """A connection whose first sync ran (it knows its divisions), and that beat would not poll again soon."""
    add_sandbox_connection("acme")
    assert execute_sync(hook_settings, "acme").status == "succeeded"


@pytest.fixture
def serve(hook_settings: Settings) -> Iterator[str]:
    with ServerThread(create_web_app(hook_settings), free_port()) as web:
        yield f"{web.base_url}/webhooks/exact"


def content(topic: str = "Accounts", division: int = CURRENT, action: str = "Update", key: str = "k") -> bytes:
    """A Content object as Exact serialises it (its own spacing and key order; we never re-serialise it)."""
    fields = {
        "Topic": topic,
        "ClientId": "00000000-0000-0000-0000-000000000001",
        "Division": division,
        "Action": action,
        "Key": key,
        "ExactOnlineEndpoint": f"https://start.exactonline.nl/api/v1/{division}/crm/Accounts(guid'{key}')",
        "EventCreatedOn": "2026-11-30T01:02:03.456",
        "Note": MARKER,
    }
    return json.dumps(fields, separators=(", ", ": ")).encode()


def signed(raw: bytes, secret: str = SECRET) -> bytes:
    return b'{"Content": ' + raw + b', "HashCode": "' + sign(raw, secret).encode() + b'"}'


def post(url: str, body: bytes) -> int:
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=10).status_code


def events(db: sessionmaker[Session]) -> list[WebhookEvent]:
    with db() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def webhook_runs(db: sessionmaker[Session]) -> list[SyncRun]:
    with db() as session:
        return list(session.scalars(select(SyncRun).where(SyncRun.trigger == "webhook")))


def test_validation_request_is_acknowledged(serve: str, db: sessionmaker[Session]) -> None:
    assert post(serve, b"") == 200
    assert events(db) == []


@pytest.mark.parametrize("secret", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_without_a_secret_receiving_is_off(
    secret: str | None, hook_settings: Settings, synced_once: None, db: sessionmaker[Session]
) -> None:
    """An empty EXACT_WEBHOOK_SECRET (as compose passes an unset variable) is no secret: a body signed with the
    empty key would pass an HMAC check with it, so the path answers 404 as when the variable is unset."""
    settings = hook_settings.model_copy(update={"exact_webhook_secret": None if secret is None else SecretStr(secret)})
    with TestClient(create_web_app(settings)) as client:
        for key in ("", "  "):
            body = signed(content(), secret=key)
            assert client.post("/webhooks/exact", content=body).status_code == 404
    assert events(db) == []


def test_forged_altered_or_unsigned_deliveries_change_nothing(
    serve: str,
    synced_once: None,
    db: sessionmaker[Session],
    queue_length: Callable[[], int],
    capfd: pytest.CaptureFixture[str],
) -> None:
    raw = content()
    good = signed(raw)
    forged = signed(raw, secret="not-the-secret")
    altered = good.replace(str(CURRENT).encode(), b"124133")  # body changed after signing
    unsigned = b'{"Content": ' + raw + b"}"
    lowercase_tampered = good.replace(b'"Update"', b'"Delete"')
    for body in (forged, altered, unsigned, lowercase_tampered, b"not json", b'{"Content": 1, "HashCode": 2}'):
        assert post(serve, body) == 401
    assert events(db) == [] and queue_length() == 0
    assert MARKER not in capfd.readouterr().out + capfd.readouterr().err


def test_a_replayed_event_is_recorded_and_scheduled_once(
    serve: str, synced_once: None, db: sessionmaker[Session], queue_length: Callable[[], int]
) -> None:
    body = signed(content(key="a"))
    assert post(serve, body) == 200
    assert post(serve, body) == 200
    [event] = events(db)
    assert (event.topic, event.division, event.action, event.record_key, event.status) == (
        "Accounts", CURRENT, "Update", "a", "queued"
    )  # fmt: skip
    assert queue_length() == 1


def test_unknown_division_or_topic_is_acknowledged_and_ignored(
    serve: str, synced_once: None, db: sessionmaker[Session], queue_length: Callable[[], int]
) -> None:
    assert post(serve, signed(content(division=999999))) == 200
    assert post(serve, signed(content(topic="Mailboxes"))) == 200
    reasons = [(e.status, e.reason) for e in events(db)]
    assert reasons == [
        ("ignored", "no active connection syncs division 999999"),
        ("ignored", "topic 'Mailboxes' maps to no synced entity"),
    ]
    assert queue_length() == 0


def test_a_burst_of_500_events_becomes_one_sync(
    serve: str,
    synced_once: None,
    hook_settings: Settings,
    db: sessionmaker[Session],
    queue_length: Callable[[], int],
    request: pytest.FixtureRequest,
) -> None:
    with httpx.Client(timeout=10) as client:
        for n in range(500):
            assert client.post(serve, content=signed(content(topic="SalesInvoices", key=f"inv-{n}"))).status_code == 200
    assert queue_length() == 1  # no worker yet: every event after the first joined the scheduled sync
    worker: subprocess.Popen[bytes] = request.getfixturevalue("celery_worker")
    try:
        wait_for(lambda: all(e.status == "synced" for e in events(db)), timeout=60)
    except AssertionError:
        raise AssertionError(stop(worker)) from None
    runs = webhook_runs(db)
    assert len(runs) == 1 and runs[0].entities == ["sales_invoices"] and runs[0].status == "succeeded"
    assert len(events(db)) == 500


def test_a_change_reaches_postgres_through_a_webhook_with_a_real_worker(
    serve: str,
    synced_once: None,
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    celery_worker: subprocess.Popen[bytes],
) -> None:
    state = sandbox.state
    account = state.create_account(CURRENT, Name="Pushed BV")
    assert post(serve, signed(content(action="Create", key=account["ID"]))) == 200
    try:
        wait_for(lambda: row(db, account["ID"]) is not None, timeout=60)
    except AssertionError:
        raise AssertionError(stop(celery_worker)) from None
    gone = state.accounts(CURRENT)[0]["ID"]
    state.delete_account(CURRENT, gone)
    assert post(serve, signed(content(action="Delete", key=gone))) == 200
    wait_for(lambda: (found := row(db, gone)) is not None and found.deleted_at is not None, timeout=60)
    wait_for(lambda: [e.status for e in events(db)] == ["synced", "synced"])  # settled once the run finished
    assert all(r.status == "succeeded" and r.entities == ["accounts"] for r in webhook_runs(db))


def test_with_a_worker_running_only_the_genuine_delivery_syncs_and_its_replay_does_nothing(
    serve: str,
    synced_once: None,
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    celery_worker: subprocess.Popen[bytes],
    queue_length: Callable[[], int],
) -> None:
    account = sandbox.state.accounts(CURRENT)[0]["ID"]
    sandbox.state.update_account(CURRENT, account, Name="Changed In Exact")
    raw = content(key=account)
    genuine = signed(raw)
    for body in (signed(raw, secret="not-the-secret"), genuine.replace(b'"Update"', b'"Delete"')):
        assert post(serve, body) == 401
    assert events(db) == [] and queue_length() == 0  # nothing for the worker to act on
    assert post(serve, genuine) == 200  # the control: this one does reach Postgres
    try:
        wait_for(lambda: (r := row(db, account)) is not None and r.name == "Changed In Exact", timeout=60)
        wait_for(lambda: [e.status for e in events(db)] == ["synced"])
    except AssertionError:
        raise AssertionError(stop(celery_worker)) from None
    assert post(serve, genuine) == 200  # Exact replaying it (or an attacker): recorded already
    assert len(events(db)) == 1 and queue_length() == 0
    assert len(webhook_runs(db)) == 1


def row(db: sessionmaker[Session], account_id: str) -> Any:
    with db() as session:
        return session.scalars(select(Account).where(Account.id == uuid.UUID(account_id))).first()


def test_events_arriving_while_the_broker_is_down_are_swept_later(
    hook_settings: Settings,
    synced_once: None,
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    request: pytest.FixtureRequest,
) -> None:
    dead_broker = hook_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    account = sandbox.state.create_account(CURRENT, Name="Arrived While Down")
    with ServerThread(create_web_app(dead_broker), free_port()) as web:
        for key in (account["ID"], "other"):
            assert post(f"{web.base_url}/webhooks/exact", signed(content(action="Create", key=key))) == 200
    assert [e.status for e in events(db)] == ["received", "received"]  # recorded, not lost

    client: redis.Redis[Any] = redis_for_webhooks(hook_settings)
    handed = Dispatcher(hook_settings, create_app(hook_settings), client).sweep(db)
    client.close()
    assert handed == 1
    worker: subprocess.Popen[bytes] = request.getfixturevalue("celery_worker")
    try:
        wait_for(lambda: all(e.status == "synced" for e in events(db)), timeout=60)
    except AssertionError:
        raise AssertionError(stop(worker)) from None
    assert row(db, account["ID"]) is not None


# Subscriptions (CLI) and the sandbox's own deliveries -------------------------------------------------------


@pytest.fixture
def sandbox_signed(hook_settings: Settings, sandbox: SandboxServer) -> Settings:
    """`serve` verifying with the secret the sandbox signs with (an app's secret, as Exact's would be)."""
    secret = SecretStr(sandbox.state.config.webhook_secret)
    return hook_settings.model_copy(update={"exact_webhook_secret": secret})


@pytest.fixture
def serve_sandbox(sandbox_signed: Settings) -> Iterator[str]:
    with ServerThread(create_web_app(sandbox_signed), free_port()) as web:
        yield f"{web.base_url}/webhooks/exact"


def test_subscribe_list_unsubscribe_per_division_and_idempotent(
    serve_sandbox: str, synced_once: None, sandbox: SandboxServer, cli: CliInvoke
) -> None:
    topics = ("-t", "Accounts", "-t", "SalesInvoices")  # the default is every synced entity's topic
    first = cli("webhooks", "subscribe", "acme", *topics, "--callback-url", serve_sandbox)
    assert first.exit_code == 0, first.output
    assert f"division {CURRENT}: Accounts subscribed" in first.output
    hub = sandbox.state.webhooks
    made = {(s.Division, s.Topic) for s in hub.subscriptions.values()}
    assert made == {(d, t) for d in (CURRENT, SECOND) for t in ("Accounts", "SalesInvoices")}
    sandbox.state.webhooks.wait_idle()
    validations = [a for a in hub.attempts if a.topic is None]
    assert len(validations) == 4 and all(a.status == 200 for a in validations)  # serve acknowledged each

    again = cli("webhooks", "subscribe", "acme", *topics, "--callback-url", serve_sandbox)
    assert again.exit_code == 0 and "already subscribed" in again.output and "Accounts subscribed" not in again.output
    assert len(hub.subscriptions) == 4

    status = cli("status", "acme")
    assert "Webhooks" in status.output and serve_sandbox in status.output

    gone = cli("webhooks", "unsubscribe", "acme", "--topic", "SalesInvoices")
    assert gone.exit_code == 0 and f"division {CURRENT}: SalesInvoices unsubscribed" in gone.output
    assert {s.Topic for s in hub.subscriptions.values()} == {"Accounts"}
    assert "unsubscribed" not in cli("webhooks", "unsubscribe", "acme", "--topic", "SalesInvoices").output
    listed = cli("webhooks", "list", "acme")
    assert listed.output.count("Accounts") == 2 and "SalesInvoices" not in listed.output


def test_exact_rules_are_clear_errors(synced_once: None, cli: CliInvoke) -> None:
    plain = cli("webhooks", "subscribe", "acme", "--callback-url", "http://sync.example.com/webhooks/exact")
    assert plain.exit_code == 1 and "CallbackURL must be an HTTPS URL" in plain.output
    typo = cli("webhooks", "subscribe", "acme", "-t", "Acounts", "--callback-url", "https://x.example.com/h")
    assert typo.exit_code == 2 and "unknown webhook topic(s) Acounts" in typo.output


def test_a_sandbox_change_reaches_postgres_through_its_webhook(
    serve_sandbox: str,
    synced_once: None,
    sandbox: SandboxServer,
    cli: CliInvoke,
    db: sessionmaker[Session],
    celery_worker: subprocess.Popen[bytes],
) -> None:
    """No beat runs here: only the webhook can bring the change in."""
    assert cli("webhooks", "subscribe", "acme", "--callback-url", serve_sandbox).exit_code == 0
    state = sandbox.state
    account = state.accounts(CURRENT)[0]
    state.update_account(CURRENT, account["ID"], Name="Changed In Exact")
    doomed = state.accounts(CURRENT)[1]["ID"]
    state.delete_account(CURRENT, doomed)
    try:
        wait_for(lambda: (r := row(db, account["ID"])) is not None and r.name == "Changed In Exact", timeout=60)
        wait_for(lambda: (r := row(db, doomed)) is not None and r.deleted_at is not None, timeout=60)
    except AssertionError:
        raise AssertionError(stop(celery_worker)) from None
    runs = webhook_runs(db)
    assert 1 <= len(runs) <= 2 and all(r.entities == ["accounts"] for r in runs)


def test_sandbox_faults_bad_signatures_duplicates_and_bursts(
    serve_sandbox: str,
    synced_once: None,
    sandbox: SandboxServer,
    cli: CliInvoke,
    db: sessionmaker[Session],
    queue_length: Callable[[], int],
) -> None:
    assert cli("webhooks", "subscribe", "acme", "-t", "SalesInvoices", "--callback-url", serve_sandbox).exit_code == 0
    state, hub = sandbox.state, sandbox.state.webhooks
    state.configure(webhook_bad_signature=True)
    assert state.publish_webhook(CURRENT, "SalesInvoices", "Update", str(uuid.uuid4())) == 1
    hub.wait_idle()
    assert hub.attempts[-1].status == 401 and events(db) == []

    state.configure(webhook_bad_signature=False, webhook_duplicates=2)
    assert state.publish_webhook(CURRENT, "SalesInvoices", "Update", "dup") == 3
    hub.wait_idle()
    assert [a.status for a in hub.attempts[-3:]] == [200, 200, 200] and len(events(db)) == 1

    state.configure(webhook_duplicates=0)
    burst = httpx.post(f"{sandbox.base_url}/sandbox/webhooks/burst", json={"topic": "SalesInvoices", "count": 500})
    assert burst.json() == {"sent": 500}
    hub.wait_idle(120)
    assert len(events(db)) == 501 and queue_length() == 1  # one scheduled sync for all of them
