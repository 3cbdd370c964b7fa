"""/health and /ready, and the probes compose runs (`exact-sync health worker|beat|web`), against real processes:
a prefork `exact-sync worker` and an `exact-sync beat` started as compose starts them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from alembic import command
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from models.migrate import alembic_config, upgrade_to_head
from syncs.core.settings import Settings
from syncs.sandbox import SandboxServer
from tests.conftest import ADMIN_URL, SESSION_TAG, _admin_execute
from tests.faults.conftest import register
from tests.lifecycle.conftest import ServerThread
from tests.ops.conftest import scrape, value
from tests.support.cli import settings_env
from tests.support.net import free_port
from tests.worker.conftest import stop, wait_for
from worker.app import SYNC_TASK, create_app
from worker.health import Heartbeat, ping_worker, read_heartbeat, worker_node
from worker.web import create_web_app

ROOT = Path(__file__).resolve().parents[2]
EXACT_SYNC = str(Path(sys.executable).with_name("exact-sync"))
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_probe(service: str) -> list[str]:
    """The command compose runs as `service`'s health check (without the leading CMD)."""
    test = COMPOSE["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "exact-sync", test
    return [EXACT_SYNC, *test[2:]]


def probe(argv: list[str], settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings, WORKER_NODE_NAME=node_name(settings))}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def node_name(settings: Settings) -> str:
    return f"{settings.celery_queue}@%h"  # unique per test: other tests' workers share the broker


def test_health_answers_and_ready_checks_every_part(web: ServerThread) -> None:
    assert httpx.get(f"{web.base_url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{web.base_url}/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready"}


@pytest.mark.parametrize(
    ("change", "parts"),
    [
        ({"redis_url": "redis://127.0.0.1:1/0"}, {"redis", "broker"}),
        ({"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nothing"}, {"postgres"}),
    ],
)
def test_ready_names_what_is_down(ops_settings: Settings, change: dict[str, str], parts: set[str]) -> None:
    with ServerThread(create_web_app(ops_settings.model_copy(update=change)), free_port()) as web:
        assert httpx.get(f"{web.base_url}/health").status_code == 200  # alive all the same
        ready = httpx.get(f"{web.base_url}/ready", timeout=30)
    assert ready.status_code == 503
    assert set(ready.json()["problems"]) == parts


@pytest.fixture
def behind_database() -> Iterator[str]:
    """A database one migration behind the code."""
    name = f"exact_sync_behind_{SESSION_TAG}"
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade_to_head(url)
    command.downgrade(alembic_config(url), "-1")
    yield url
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_ready_refuses_a_database_behind_the_migrations(ops_settings: Settings, behind_database: str) -> None:
    with ServerThread(
        create_web_app(ops_settings.model_copy(update={"database_url": behind_database})), free_port()
    ) as web:
        ready = httpx.get(f"{web.base_url}/ready")
        web_probe = probe([*compose_probe("web")[:-1], f"{web.base_url}/ready"], ops_settings)
    assert ready.status_code == 503
    assert set(ready.json()["problems"]) == {"migrations"}
    assert web_probe.returncode == 1 and "503" in web_probe.stderr


class TaskEvents:
    """Celery task events as Flower receives them, captured on a thread."""

    def __init__(self, app: Celery) -> None:
        self.seen: list[dict[str, Any]] = []
        self._connection = app.connection_for_read()
        self._receiver = app.events.Receiver(self._connection, handlers={"*": self.seen.append})
        self._thread = threading.Thread(target=self._receiver.capture, kwargs={"limit": None}, daemon=True)
        self._thread.start()
        # Events travel by broadcast: listening is proven by a worker's heartbeat (every 2 s), not before.
        wait_for(lambda: any(event["type"] == "worker-heartbeat" for event in list(self.seen)), 30)

    def kinds(self, task_id: str) -> set[str]:
        return {event["type"] for event in list(self.seen) if event.get("uuid") == task_id}

    def wait(self, task_id: str, kinds: set[str]) -> None:
        wait_for(lambda: self.kinds(task_id) >= kinds, 30)

    def first(self, task_id: str, kind: str) -> dict[str, Any]:
        return next(e for e in list(self.seen) if e.get("uuid") == task_id and e["type"] == kind)

    def stop(self) -> None:
        self._receiver.should_stop = True
        self._thread.join(5)
        self._connection.release()


def start(argv: list[str], settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings_env(settings, WORKER_NODE_NAME=node_name(settings))}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.timeout(120)
def test_worker_probe_and_metrics_from_a_prefork_worker(
    live_settings: Settings, db: sessionmaker[Session], live_sandbox: SandboxServer
) -> None:
    worker_probe = compose_probe("worker")
    assert probe([*worker_probe, "--timeout", "1"], live_settings).returncode == 1  # nothing runs yet
    worker = start([EXACT_SYNC, "worker", "--concurrency", "2", "--without-mingle"], live_settings)
    try:
        node = worker_node(node_name(live_settings))
        wait_for(lambda: ping_worker(create_app(live_settings), node, 0.5) or worker.poll() is not None, 60, 0.2)
        answered = probe(worker_probe, live_settings)
        assert answered.returncode == 0, answered.stderr
        assert f"{live_settings.celery_queue}@{socket.gethostname()}" in answered.stdout
        for name in ("acme", "globex"):
            register(db, live_settings, live_sandbox.state, name)
        celery_app = create_app(live_settings)
        events = TaskEvents(celery_app)
        results = [
            celery_app.send_task(SYNC_TASK, args=[n], queue=live_settings.celery_queue) for n in ("acme", "globex")
        ]
        outcomes = [result.get(timeout=60) for result in results]
        assert [o["status"] for o in outcomes] == ["succeeded", "succeeded"]
        # What Flower shows: each task by its public name, with readable arguments, received and succeeded.
        for result, name in zip(results, ("acme", "globex"), strict=True):
            events.wait(result.id, {"task-sent", "task-received", "task-started", "task-succeeded"})
            received = events.first(result.id, "task-received")
            assert received["name"] == SYNC_TASK and received["args"] == repr([name])
        events.stop()
        with ServerThread(create_web_app(live_settings), free_port()) as web:
            samples = scrape(web.base_url)
        # Written by two prefork children, read by one exporter.
        for outcome in outcomes:
            name = outcome["connection"]
            assert value(samples, "exact_sync_runs_total", connection=name, status="succeeded") == 1
            assert value(samples, "exact_sync_run_api_calls_total", connection=name) == outcome["api_calls"]
            assert (
                value(samples, "exact_sync_rows_total", connection=name, entity="accounts", action="inserted")
                == (outcome["rows_by_entity"]["accounts"]["inserted"])
            )
    finally:
        output = stop(worker)
    assert "Traceback" not in output, output
    down = probe([*worker_probe, "--timeout", "1"], live_settings)
    assert down.returncode == 1 and "did not answer" in down.stderr


def heartbeat(settings: Settings) -> Heartbeat | None:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return read_heartbeat(client, settings.redis_key_prefix)
    finally:
        client.close()


@pytest.mark.timeout(120)
def test_beat_probe_follows_the_beat_process(live_settings: Settings, db: sessionmaker[Session]) -> None:
    beat_probe = compose_probe("beat")
    assert probe(beat_probe, live_settings).returncode == 1
    beat = start([EXACT_SYNC, "beat", "-s", os.devnull], live_settings)
    try:
        wait_for(lambda: heartbeat(live_settings) or beat.poll() is not None, 60, 0.2)
        healthy = probe(beat_probe, live_settings)
        assert healthy.returncode == 0, healthy.stderr
        assert "leader" in healthy.stdout
    finally:
        output = stop(beat)
    assert "Traceback" not in output, output
    time.sleep(1.1)  # the heartbeat ages past --max-age 1 (compose waits the lock's TTL)
    stale = probe([*beat_probe, "--max-age", "1"], live_settings)
    assert stale.returncode == 1 and "last ticked" in stale.stderr


def test_compose_hands_serve_its_admin_token() -> None:
    """Compose passes only the variables it lists: without SERVE_ADMIN_TOKEN in the list, /metrics and /dashboard
    stay off (404) in the `web` container whatever `.env` says, and the README's scrape config gets nothing."""
    environment = COMPOSE["services"]["web"]["environment"]
    assert environment.get("SERVE_ADMIN_TOKEN") == "${SERVE_ADMIN_TOKEN:-}", environment


@pytest.mark.parametrize("service", ["web", "worker", "beat"])
@pytest.mark.parametrize("variable", ["EXACT_WEBHOOK_SECRET", "WEBHOOK_CALLBACK_URL", "OUTGOING_WEBHOOK_SECRET"])
def test_compose_hands_the_webhook_settings_to_every_app_service(service: str, variable: str) -> None:
    """Without them in the list, receiving Exact's webhooks and signing outgoing ones could not be turned on from
    `.env` in compose (an empty value keeps each off)."""
    environment = COMPOSE["services"][service]["environment"]
    assert environment.get(variable) == f"${{{variable}:-}}", environment
    assert environment.get("WEBHOOK_AUTO_SUBSCRIBE") == "${WEBHOOK_AUTO_SUBSCRIBE:-false}"
