"""Shared ways to aim settings at a sandbox and to run `exact-sync` (in process or as subprocesses) with them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from syncs.core.settings import Settings, get_settings
from syncs.sandbox import SandboxServer
from worker import cli_support
from worker.cli import app as cli_app

CliInvoke = Callable[..., Result]


def aimed_at(settings: Settings, sandbox: SandboxServer, **changes: Any) -> Settings:
    """`settings` talking to `sandbox` with its client credentials, plus any other changes."""
    config = sandbox.state.config
    update = {
        "exact_base_url": sandbox.base_url,
        "exact_client_id": config.client_id,
        "exact_client_secret": SecretStr(config.client_secret),
        **changes,
    }
    return settings.model_copy(update=update)


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment variables that make a subprocess (or get_settings()) see exactly these settings."""
    key = settings.token_encryption_key
    secret = settings.exact_client_secret
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "CELERY_QUEUE": settings.celery_queue,
        "CELERY_KEY_PREFIX": settings.celery_key_prefix,
        "CELERY_CONSUME_DEFAULT_QUEUE": str(settings.celery_consume_default_queue).lower(),
        "TOKEN_ENCRYPTION_KEY": key.get_secret_value() if key else "",
        "EXACT_BASE_URL": settings.exact_base_url or "",
        "EXACT_CLIENT_ID": settings.exact_client_id or "",
        "EXACT_CLIENT_SECRET": secret.get_secret_value() if secret else "",
        "EXACT_REDIRECT_URI": settings.exact_redirect_uri,
        "BEAT_TICK_SECONDS": str(settings.beat_tick_seconds),
    }
    env.update(extra)
    return env


def cli_invoker(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliInvoke]:
    """Runs `exact-sync ...` in process with `settings` taken from the environment, as in production."""
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    for console in (cli_support.console, cli_support.err_console):
        monkeypatch.setattr(console, "width", 250)  # no wrapping inside the words tests look for
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        try:
            return runner.invoke(cli_app, list(args), input=input, catch_exceptions=False)
        finally:
            # `run`/`demo` point structlog at the runner's stderr, which is closed once the command returns.
            structlog.reset_defaults()

    yield invoke
    get_settings.cache_clear()
