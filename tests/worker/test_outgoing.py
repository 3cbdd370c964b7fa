"""Outgoing webhooks with a real worker: a receiver verifies the documented signature; failures are retried
with backoff, recorded in webhook_deliveries, and replayable from the CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models import Change, WebhookDelivery
from syncs.core.settings import Settings, get_settings
from tests.lifecycle.conftest import ServerThread
from tests.support.cli import CliInvoke
from tests.support.net import free_port
from tests.worker.conftest import stop, wait_for
from worker.runs import execute_sync

SECRET = "outgoing-test-secret"


class Receiver:
    """The user's endpoint: checks X-Exact-Sync-Signature as the README says, answers the scripted statuses."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[tuple[str, dict[str, Any], bool]] = []

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            fields = dict(part.split("=", 1) for part in request.headers["X-Exact-Sync-Signature"].split(","))
            signed = fields["t"].encode() + b"." + body
            expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
            verified = hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300
            self.received.append((request.headers["X-Exact-Sync-Delivery"], json.loads(body), verified))
            status = self.statuses.pop(0) if self.statuses else 200
            return Response(status_code=status if verified else 401)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    with ServerThread(found.app(), free_port()) as web:
        yield found, f"{web.base_url}/hook"


@pytest.fixture
def outgoing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the worker (started after this) and the CLI read: the signing secret, a quick backoff, 3 attempts."""
    monkeypatch.setenv("OUTGOING_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("OUTGOING_WEBHOOK_BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("OUTGOING_WEBHOOK_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()


@pytest.fixture
def sending(
    outgoing_env: None,
    receiver: tuple[Receiver, str],
    add_sandbox_connection: Callable[..., Any],
    cli: CliInvoke,
    celery_worker: subprocess.Popen[bytes],
) -> tuple[Receiver, subprocess.Popen[bytes]]:
    """Connection acme sending its outgoing webhooks to the receiver, and a worker (started once the environment
    says how to sign and retry) to deliver them."""
    endpoint, url = receiver
    add_sandbox_connection("acme")
    assert cli("webhooks", "outgoing", "acme", "--url", url).exit_code == 0
    return endpoint, celery_worker


def delivered_by(worker: subprocess.Popen[bytes], condition: Callable[[], object]) -> None:
    """Wait for `condition`; on a timeout, fail with the worker's output."""
    try:
        wait_for(condition)
    except AssertionError:
        raise AssertionError(stop(worker)) from None


def deliveries(db: sessionmaker[Session]) -> list[WebhookDelivery]:
    with db() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_each_run_posts_a_signed_webhook_per_changed_entity(
    sending: tuple[Receiver, subprocess.Popen[bytes]], sandbox_settings: Settings, db: sessionmaker[Session]
) -> None:
    endpoint, worker = sending
    entities = ["accounts", "sales_invoices"]
    outcome = execute_sync(sandbox_settings, "acme", entities=entities)
    delivered_by(worker, lambda: len(endpoint.received) == 2 and all(d.status == "delivered" for d in deliveries(db)))
    assert all(verified for _, _, verified in endpoint.received)
    payloads = {payload["entity"]: payload for _, payload, _ in endpoint.received}
    assert set(payloads) == {"accounts", "sales_invoices"}
    assert sum(p["inserted"] for p in payloads.values()) == outcome.inserted
    assert all(p["connection"] == "acme" and p["run_id"] == outcome.run_id for p in payloads.values())
    with db() as session:
        last_seq = session.scalar(select(func.max(Change.seq)))
    assert max(part["last_seq"] for p in payloads.values() for part in p["divisions"]) == last_seq
    assert [(d.attempts, d.last_status) for d in deliveries(db)] == [(1, 200), (1, 200)]

    execute_sync(sandbox_settings, "acme", entities=entities)  # nothing changed: nothing to announce
    assert len(deliveries(db)) == 2


def test_a_failing_receiver_is_retried_recorded_and_replayed(
    sending: tuple[Receiver, subprocess.Popen[bytes]],
    sandbox_settings: Settings,
    cli: CliInvoke,
    db: sessionmaker[Session],
) -> None:
    endpoint, worker = sending
    endpoint.statuses = [503] * 3  # the delivery fails all 3 attempts
    execute_sync(sandbox_settings, "acme", entities=["accounts"])
    delivered_by(worker, lambda: [d.status for d in deliveries(db)] == ["failed"])
    [failed] = deliveries(db)
    assert (failed.attempts, failed.last_status, failed.last_error) == (3, 503, "HTTP 503")
    assert [delivery_id for delivery_id, _, _ in endpoint.received] == [str(failed.id)] * 3
    listing = cli("webhooks", "deliveries", "acme", "--failed")
    assert "HTTP 503" in listing.output and "failed" in listing.output

    endpoint.statuses = []  # the receiver is fixed
    replayed = cli("webhooks", "replay", "--failed", "acme")
    assert replayed.exit_code == 0, replayed.output
    delivered_by(worker, lambda: [d.status for d in deliveries(db)] == ["delivered"])
    assert deliveries(db)[0].attempts == 1 and len(endpoint.received) == 4


@pytest.mark.parametrize("secret", ["", "  "], ids=["empty", "blank"])
def test_no_outgoing_url_without_a_real_signing_secret(
    secret: str, monkeypatch: pytest.MonkeyPatch, add_sandbox_connection: Callable[..., Any], cli: CliInvoke
) -> None:
    """An empty OUTGOING_WEBHOOK_SECRET is no secret (deliveries could not be signed): the URL is refused."""
    monkeypatch.setenv("OUTGOING_WEBHOOK_SECRET", secret)
    get_settings.cache_clear()
    add_sandbox_connection("acme")
    refused = cli("webhooks", "outgoing", "acme", "--url", "https://app.example/hook")
    assert refused.exit_code == 2 and "set OUTGOING_WEBHOOK_SECRET first" in refused.output


def test_deliveries_and_replay_name_an_unknown_connection_and_an_empty_replay_is_no_error(
    add_sandbox_connection: Callable[..., Any], cli: CliInvoke
) -> None:
    add_sandbox_connection("acme")
    for args in (("deliveries", "ghost"), ("replay", "--failed", "ghost")):
        unknown = cli("webhooks", *args)
        assert unknown.exit_code == 2 and "unknown connection 'ghost'" in unknown.output, args
    empty = cli("webhooks", "replay", "--failed", "acme")
    assert empty.exit_code == 0 and "acme has no failed deliveries" in empty.output
    assert cli("webhooks", "replay", "4711").exit_code == 2  # no such delivery
