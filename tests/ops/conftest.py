"""Fixtures for the operator views: a sandbox on a FakeClock, settings with an admin token, `serve` on a thread,
and a Prometheus text parser."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.settings import Settings
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from tests.faults.conftest import own_redis  # noqa: F401  (a private redis-server the doctor tests stop)
from tests.lifecycle.conftest import ServerThread
from tests.support.cli import aimed_at
from tests.support.clock import FakeClock
from tests.support.net import free_port
from worker.web import create_web_app

ADMIN_TOKEN = "ops-test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DIV = 124132  # the sandbox's seeded current division

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_030.0)


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxState(SandboxConfig(page_size=20), clock=clock)) as server:
        yield server


@pytest.fixture
def ops_settings(settings: Settings, sandbox: SandboxServer, db: sessionmaker[Session]) -> Settings:
    return aimed_at(settings, sandbox, serve_admin_token=SecretStr(ADMIN_TOKEN))


@pytest.fixture
def web(ops_settings: Settings, clock: FakeClock) -> Iterator[ServerThread]:
    """`exact-sync serve`'s app on the test's clock."""
    with ServerThread(create_web_app(ops_settings, clock), free_port()) as server:
        yield server


@pytest.fixture
def live_sandbox() -> Iterator[SandboxServer]:
    """On the real clock: the worker subprocess runs on it too."""
    with SandboxServer(SandboxState(SandboxConfig(minutely_limit=None, daily_limit=None))) as server:
        yield server


@pytest.fixture
def live_settings(settings: Settings, live_sandbox: SandboxServer, db: sessionmaker[Session]) -> Settings:
    return aimed_at(settings, live_sandbox, beat_tick_seconds=0.2, serve_admin_token=SecretStr(ADMIN_TOKEN))


def scrape(base_url: str) -> Samples:
    response = httpx.get(f"{base_url}/metrics", headers=ADMIN, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str | int) -> float:
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    assert key in samples, f"{name}{labels} not exposed; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]
