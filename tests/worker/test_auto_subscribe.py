"""Automatic webhook subscription after a connect (WEBHOOK_AUTO_SUBSCRIBE): a task a real worker runs subscribes
every synced topic in every division at the sandbox; its failures, and a broker that is down, never fail the
connect and show in `status`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.settings import Settings, get_settings
from syncs.sandbox.server import SandboxServer
from syncs.webhooks.topics import synced_topics
from tests.lifecycle.conftest import ServerThread
from tests.support.cli import CliInvoke
from tests.support.net import free_port
from tests.worker.conftest import CURRENT, start_celery_worker, stop, wait_for
from worker.auto_subscribe import auto_subscribe_task
from worker.web import create_web_app

SECOND = 124133


@pytest.fixture
def serve_sandbox(sandbox_settings: Settings, sandbox: SandboxServer) -> Iterator[str]:
    """`serve`, verifying with the secret the sandbox signs with: it answers the validation POSTs."""
    secret = SecretStr(sandbox.state.config.webhook_secret)
    with ServerThread(
        create_web_app(sandbox_settings.model_copy(update={"exact_webhook_secret": secret})), free_port()
    ) as web:
        yield f"{web.base_url}/webhooks/exact"


def auto_on(monkeypatch: pytest.MonkeyPatch, callback_url: str, **extra: str) -> dict[str, str]:
    """WEBHOOK_AUTO_SUBSCRIBE on for the in-process CLI (and what a worker's environment needs for it)."""
    env = {"WEBHOOK_AUTO_SUBSCRIBE": "true", "WEBHOOK_CALLBACK_URL": callback_url, **extra}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return env


def test_a_new_connection_is_subscribed_to_every_synced_topic_by_a_worker(
    serve_sandbox: str,
    sandbox_settings: Settings,
    sandbox: SandboxServer,
    add_sandbox_connection: Callable[..., Any],
    cli: CliInvoke,
    monkeypatch: pytest.MonkeyPatch,
    queue_length: Callable[[], int],
) -> None:
    env = auto_on(monkeypatch, serve_sandbox)
    add_sandbox_connection("acme")  # no sync yet: the task reads the division list first
    assert queue_length() == 1
    assert "automatic webhook subscription of acme: " in cli("status", "acme").output
    worker: subprocess.Popen[bytes] = start_celery_worker(sandbox_settings, "solo", 1, **env)
    hub = sandbox.state.webhooks
    wanted = {(division, topic) for division in (CURRENT, SECOND) for topic in synced_topics()}
    try:
        wait_for(lambda: {(s.Division, s.Topic) for s in hub.subscriptions.values()} == wanted, timeout=60)
        wait_for(lambda: "subscribed: " in cli("status", "acme").output, timeout=30)
    except AssertionError:
        raise AssertionError(stop(worker)) from None
    stop(worker)
    status = cli("status", "acme").output
    assert f"subscribed: {len(wanted)} new subscription(s) in 2 division(s)" in status
    assert "Webhooks" in status and serve_sandbox in status  # our copy of the subscriptions
    hub.wait_idle()
    assert all(a.status == 200 for a in hub.attempts if a.topic is None)  # serve acknowledged each validation


def test_a_failing_subscription_shows_in_status_and_the_connect_stands(
    sandbox: SandboxServer,
    add_sandbox_connection: Callable[..., Any],
    cli: CliInvoke,
    monkeypatch: pytest.MonkeyPatch,
    db: sessionmaker[Session],
) -> None:
    auto_on(monkeypatch, "http://sync.example.com/webhooks/exact")  # Exact refuses a callback that is not HTTPS
    add_sandbox_connection("acme")
    outcome = auto_subscribe_task("acme")["outcome"]
    assert outcome.startswith("failed: ") and "HTTPS" in outcome
    status = cli("status", "acme").output
    assert "automatic webhook subscription of acme:" in status and "failed: " in status
    assert sandbox.state.webhooks.subscriptions == {}
    assert "active" in cli("connections", "list").output


def test_a_broker_down_at_connect_is_shown_not_raised(
    sandbox_settings: Settings,
    add_sandbox_connection: Callable[..., Any],
    cli: CliInvoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auto_on(monkeypatch, "https://sync.example.com/webhooks/exact", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    add_sandbox_connection("acme")  # asserts the exit code 0
    monkeypatch.setenv("REDIS_URL", sandbox_settings.redis_url)  # the broker is back
    get_settings.cache_clear()
    status = cli("status", "acme").output
    assert "automatic webhook subscription of acme: " in status and "not requested (OperationalError)" in status


def test_off_by_default(
    add_sandbox_connection: Callable[..., Any], queue_length: Callable[[], int], cli: CliInvoke
) -> None:
    add_sandbox_connection("acme")
    assert queue_length() == 0
    assert "automatic webhook subscription" not in cli("status", "acme").output
