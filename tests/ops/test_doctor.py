"""`exact-sync doctor` with everything up (a real prefork worker and beat), then each dependency down in turn, a
connection needing new consent, bad configuration, and a clock that is off Exact's."""

from __future__ import annotations

import json
import os
import threading
import time
from email.utils import formatdate
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from syncs.core.errors import ReauthRequiredError
from syncs.core.settings import Settings, get_settings
from syncs.sandbox import SandboxServer
from tests.faults.conftest import OwnRedis, register
from tests.ops.test_health import EXACT_SYNC, start
from tests.support.cli import settings_env
from tests.support.clock import FakeClock
from tests.support.net import free_port
from tests.worker.conftest import stop, wait_for
from worker.app import create_app
from worker.cli import app as cli_app
from worker.health import ping_worker, worker_node
from worker.runs import execute_sync

Levels = dict[str, str]


def doctor(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any]]:
    """`exact-sync doctor --json` in process, configured through the environment as in production."""
    token = settings.serve_admin_token.get_secret_value() if settings.serve_admin_token else ""
    for key, value in settings_env(settings, SERVE_ADMIN_TOKEN=token).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["doctor", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def levels(report: dict[str, Any]) -> Levels:
    return {check["name"]: check["level"] for check in report["checks"]}


def check(report: dict[str, Any], name: str) -> dict[str, str]:
    found = [c for c in report["checks"] if c["name"] == name]
    assert found, f"no check {name!r} in {levels(report)}"
    return dict(found[0])


@pytest.mark.timeout(180)
def test_everything_up_then_beat_then_worker_stopped(
    live_settings: Settings, db: sessionmaker[Session], live_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(db, live_settings, live_sandbox.state)
    execute_sync(live_settings, "acme")
    worker = start([EXACT_SYNC, "worker", "--concurrency", "1", "--without-mingle"], live_settings)
    beat = start([EXACT_SYNC, "beat", "-s", os.devnull], live_settings)
    try:
        node = worker_node(f"{live_settings.celery_queue}@%h")
        wait_for(lambda: ping_worker(create_app(live_settings), node, 0.5) or worker.poll() is not None, 60, 0.2)
        code, report = doctor(live_settings, monkeypatch)
        assert code == 0, report
        assert report["ok"] is True
        assert set(levels(report).values()) == {"OK"}, report
        assert {"postgres", "migrations", "redis", "broker", "worker", "beat", "connection acme"} <= set(levels(report))
        assert f"exact: {live_settings.exact_base_url}" in levels(report)
        assert "refresh token 0.0 days old, expires in 30.0 days" in check(report, "connection acme: tokens")["detail"]

        stop(beat)  # a clean stop gives the leader lock back
        code, report = doctor(live_settings, monkeypatch)
        assert code == 1 and check(report, "beat")["level"] == "FAIL"
        assert check(report, "beat")["fix"] == "start one: exact-sync beat"
        assert check(report, "worker")["level"] == "OK"

        stop(worker)
        code, report = doctor(live_settings, monkeypatch)
        assert code == 1 and check(report, "worker")["level"] == "FAIL"
        assert check(report, "worker")["fix"].startswith("start one: exact-sync worker")
    finally:
        stop(beat)
        stop(worker)


def test_redis_down(
    ops_settings: Settings,
    own_redis: OwnRedis,
    monkeypatch: pytest.MonkeyPatch,
    db: sessionmaker[Session],
    sandbox: SandboxServer,
) -> None:
    register(db, ops_settings, sandbox.state)
    target = ops_settings.model_copy(update={"redis_url": own_redis.url})
    code, report = doctor(target, monkeypatch)
    assert check(report, "redis")["level"] == "OK" and check(report, "broker")["level"] == "OK"
    own_redis.stop()
    code, report = doctor(target, monkeypatch)
    assert code == 1
    assert {name: levels(report)[name] for name in ("redis", "broker", "beat", "postgres", "migrations")} == {
        "redis": "FAIL", "broker": "FAIL", "beat": "FAIL", "postgres": "OK", "migrations": "OK",
    }  # fmt: skip
    assert check(report, "redis")["fix"] == "check REDIS_URL and that Redis runs"
    budget = check(report, "connection acme: budgets")  # not silently left out
    assert budget["level"] == "WARN" and "Redis is down" in budget["detail"], budget


def test_postgres_down(ops_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    target = ops_settings.model_copy(update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"})
    code, report = doctor(target, monkeypatch)
    assert code == 1
    assert check(report, "postgres")["level"] == "FAIL"
    assert check(report, "connections")["level"] == "FAIL"
    assert check(report, "redis")["level"] == "OK"


def test_exact_unreachable(ops_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    code, report = doctor(ops_settings.model_copy(update={"exact_base_url": nowhere}), monkeypatch)
    assert code == 1
    found = check(report, f"exact: {nowhere}")
    assert found["level"] == "FAIL" and found["detail"].startswith("unreachable: ConnectError")


def test_connection_needing_new_consent(
    ops_settings: Settings,
    db: sessionmaker[Session],
    sandbox: SandboxServer,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register(db, ops_settings, sandbox.state)
    sandbox.state.revoke_refresh_tokens()
    clock.advance(600)
    with pytest.raises(ReauthRequiredError):
        execute_sync(ops_settings, "acme", clock=clock)
    code, report = doctor(ops_settings, monkeypatch)
    assert code == 1
    found = check(report, "connection acme")
    assert found["level"] == "FAIL" and found["detail"].startswith("needs new consent")
    assert "exact-sync connections invite acme" in found["fix"]
    assert "exact-sync connect acme --region nl" in found["fix"]


@pytest.mark.parametrize(
    ("change", "name", "level"),
    [
        ({"token_encryption_key": SecretStr("not-a-fernet-key")}, "config: encryption key", "FAIL"),
        ({"exact_client_id": None}, "config: Exact app", "FAIL"),
        ({"exact_redirect_uri": "/oauth/callback"}, "config: redirect URI", "FAIL"),
        ({"exact_redirect_uri": "https://x.example/cb#frag"}, "config: redirect URI", "FAIL"),
        ({"exact_redirect_uri": "http://sync.example.com/oauth/callback"}, "config: redirect URI", "WARN"),
        ({"serve_admin_token": None}, "config: admin token", "WARN"),
    ],
)
def test_configuration(
    ops_settings: Settings, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], name: str, level: str
) -> None:
    _, report = doctor(ops_settings.model_copy(update=change), monkeypatch)
    assert check(report, name)["level"] == level
    assert check(report, name)["fix"]


class SkewedExact:
    """A server whose Date header is `skew` seconds off ours (uvicorn's own Date header switched off)."""

    def __init__(self, skew: float) -> None:
        def me(request: Request) -> Response:
            return Response(status_code=401, headers={"Date": formatdate(time.time() + skew, usegmt=True)})

        app = Starlette(routes=[Route("/api/v1/current/Me", me)])
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", date_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        wait_for(lambda: self._server.started, 10, 0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)


@pytest.mark.parametrize(("skew", "level"), [(0, "OK"), (10, "WARN"), (-120, "FAIL")])
def test_clock_offset_against_exacts_date_header(
    ops_settings: Settings, monkeypatch: pytest.MonkeyPatch, skew: float, level: str
) -> None:
    with SkewedExact(skew) as url:
        _, report = doctor(ops_settings.model_copy(update={"exact_base_url": url}), monkeypatch)
    found = check(report, f"exact: {url}")
    assert found["level"] == level, found
    offset = float(found["detail"].split("clock offset ")[1].split(" s")[0])
    assert abs(offset - skew) <= 1.5, found  # the Date header has 1 s resolution
