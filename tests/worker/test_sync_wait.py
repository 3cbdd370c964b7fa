"""`sync --wait` gives up after a bounded, configurable time with a clear message (no worker is running here)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from syncs.core.settings import Settings, get_settings
from tests.support.cli import CliInvoke, settings_env

EXACT_SYNC = str(Path(sys.executable).with_name("exact-sync"))


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
    negative = cli("sync", "acme", "--wait", "--timeout", "-5")
    assert negative.exit_code == 2 and "queued" not in negative.output, negative.output


def test_wait_giving_up_ends_the_process_without_a_traceback(
    sandbox_settings: Settings, add_sandbox_connection: Callable[..., Result]
) -> None:
    """In its own process, as users run it: a timed-out wait must not leave Celery's result subscription for
    the interpreter's shutdown, where it printed a traceback after the one-line error."""
    add_sandbox_connection("acme")
    done = subprocess.run(
        [EXACT_SYNC, "sync", "acme", "--wait", "--timeout", "0.5"],
        env={**os.environ, **settings_env(sandbox_settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "no outcome within 0.5 s" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
