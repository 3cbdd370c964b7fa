"""`sync --wait` gives up after a bounded, configurable time with a clear message (no worker is running here)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import Result

from syncs.core.settings import get_settings
from tests.support.cli import CliInvoke


def test_wait_gives_up_after_the_configured_time(
    cli: CliInvoke, add_sandbox_connection: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sandbox_connection("acme")
    monkeypatch.setenv("SYNC_WAIT_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    result = cli("sync", "acme", "--wait")
    assert result.exit_code == 1
    assert "no outcome within 0.5 s: is a worker running on queue" in result.output
    assert "Traceback" not in result.output
    explicit = cli("sync", "acme", "--wait", "--timeout", "0.2")
    assert explicit.exit_code == 1 and "no outcome within 0.2 s" in explicit.output
