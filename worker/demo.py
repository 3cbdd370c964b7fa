"""`exact-sync sandbox` and `exact-sync demo`: the sandbox in the foreground, and a whole sync against it.

The sandbox package is imported lazily: the worker and beat never need it (nor uvicorn at import time).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ConnectionStatus
from models.migrate import upgrade_to_head
from models.synced import SYNCED_MODELS
from syncs.core.db import session_factory
from syncs.core.errors import ConfigurationError
from syncs.core.settings import Settings
from syncs.lifecycle.connections import get_connection_by_name, remove_connection
from worker.cli_connections import register

DEMO_CONNECTION = "demo"


def sandbox_settings(settings: Settings, base_url: str) -> tuple[Settings, bool]:
    """Settings aimed at a sandbox; returns (settings, whether an ephemeral encryption key was made up)."""
    from syncs.sandbox.state import SandboxConfig

    config = SandboxConfig()
    update: dict[str, Any] = {
        "exact_base_url": base_url,
        "exact_client_id": config.client_id,
        "exact_client_secret": SecretStr(config.client_secret),
    }
    key = settings.token_encryption_key
    ephemeral = key is None or not key.get_secret_value().strip()  # unset, or set to "" (as compose may)
    if ephemeral:
        update["token_encryption_key"] = SecretStr(Fernet.generate_key().decode())
    return settings.model_copy(update=update), ephemeral


@contextmanager
def running_sandbox(port: int = 0) -> Iterator[tuple[str, dict[str, str]]]:
    """An in-process sandbox on a free port; yields its base URL and a freshly issued token pair."""
    from syncs.sandbox.server import SandboxServer
    from syncs.sandbox.state import SandboxConfig, SandboxState

    state = SandboxState(SandboxConfig())
    with SandboxServer(state, port=port) as server:
        yield server.base_url, state.issue_tokens()


def tokens_from_sandbox(base_url: str) -> dict[str, str]:
    """Ask a running sandbox (e.g. the compose service) for tokens, as if consent had just been given."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/sandbox/tokens", data=b"{}", method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            document = json.load(response)
    except OSError as exc:
        raise ConfigurationError(f"cannot reach the sandbox at {base_url}: {exc}") from None
    if not isinstance(document, dict) or "refresh_token" not in document:
        raise ConfigurationError(f"{base_url} does not look like an exact-sync sandbox")
    return {str(k): str(v) for k, v in document.items()}


def register_demo(settings: Settings, tokens: dict[str, str], *, replace: bool) -> bool:
    """Registers the demo connection; returns False when an active one exists and `replace` is off.

    An inactive one (its sandbox restarted, so its tokens died) is always replaced.
    """
    upgrade_to_head(settings.database_url)
    with session_factory(settings.database_url).begin() as session:
        try:
            existing = get_connection_by_name(session, DEMO_CONNECTION)
        except ConfigurationError:
            pass
        else:
            if not replace and existing.status == ConnectionStatus.ACTIVE:
                return False
            remove_connection(session, DEMO_CONNECTION)
    register(
        settings,
        DEMO_CONNECTION,
        "nl",
        tokens["refresh_token"],
        access_token=tokens.get("access_token"),
        expires_in=float(tokens.get("expires_in", 600)),
        interval=1,
    )
    return True


def retire_demo(settings: Settings) -> None:
    """After an in-process demo the sandbox is gone: disable the connection so beat does not try it."""
    with session_factory(settings.database_url).begin() as session:
        connection = get_connection_by_name(session, DEMO_CONNECTION)
        connection.status = ConnectionStatus.DISABLED
        connection.status_reason = "demo finished: its in-process sandbox has stopped (run `exact-sync demo` again)"


def row_counts(session: Session) -> dict[str, tuple[int, int]]:
    counts = {}
    for name, model in SYNCED_MODELS.items():
        total = session.scalar(select(func.count()).select_from(model)) or 0
        deleted = session.scalar(select(func.count()).select_from(model).where(model.deleted_at.is_not(None))) or 0
        counts[name] = (total, deleted)
    return counts
