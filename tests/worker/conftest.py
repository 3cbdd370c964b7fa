"""Fixtures for the worker room: a sandbox, settings aimed at it, the CLI, and real Celery subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import Result

from syncs.core.settings import Settings
from syncs.sandbox.server import SandboxServer
from syncs.sandbox.state import SandboxConfig, SandboxState
from tests.support.cli import CliInvoke, aimed_at, cli_invoker, settings_env

ROOT = Path(__file__).resolve().parents[2]
CURRENT = 124132  # the sandbox's seeded current division
CELERY = str(Path(sys.executable).with_name("celery"))


def wait_for(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxState(SandboxConfig(minutely_limit=None, daily_limit=None)))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox_settings(settings: Settings, sandbox: SandboxServer) -> Settings:
    return aimed_at(settings, sandbox, beat_tick_seconds=0.2)


@pytest.fixture
def cli(sandbox_settings: Settings, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> Iterator[CliInvoke]:
    """Runs `exact-sync ...` in process on an emptied database."""
    yield from cli_invoker(sandbox_settings, monkeypatch)


@pytest.fixture
def add_sandbox_connection(cli: CliInvoke, sandbox: SandboxServer) -> Callable[..., Result]:
    """`exact-sync connections add NAME ...` with a token pair the sandbox just issued."""

    def add(name: str = "acme", *extra: str) -> Result:
        tokens = sandbox.state.issue_tokens()
        result = cli(
            "connections", "add", name, "--region", "nl",
            "--refresh-token", tokens["refresh_token"],
            "--access-token", tokens["access_token"],
            "--expires-in", str(tokens["expires_in"]),
            *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return result

    return add


@pytest.fixture
def queue_length(settings: Settings, redis_client: redis.Redis[bytes]) -> Callable[[], int]:
    """Messages waiting in this test's Celery queue (kombu keeps a Redis list named after the queue)."""
    return lambda: int(redis_client.llen(f"{settings.celery_key_prefix}{settings.celery_queue}"))


def start_celery_worker(
    settings: Settings, pool: str = "solo", concurrency: int = 1, **extra_env: str
) -> subprocess.Popen[bytes]:
    """A real `celery worker` subprocess consuming `settings`' queue."""
    env = {**os.environ, **settings_env(settings, **extra_env)}
    return subprocess.Popen(
        [
            CELERY, "-A", "worker.app", "worker", "-Q", settings.celery_queue,
            "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"{settings.celery_queue}@%h",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture
def celery_worker(sandbox_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` subprocess consuming this test's queue."""
    process = start_celery_worker(sandbox_settings)
    yield process
    stop(process)


def stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    out = process.stdout.read() if process.stdout else b""
    return out.decode(errors="replace")
