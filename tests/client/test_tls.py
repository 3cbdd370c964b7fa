"""Every HTTP client of a run shares one verifying TLS context (syncs.exact.tls): building one per client cost
about 15 ms each, and a run opens an API client and a token client for its plan and again for each division."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.settings import Settings
from syncs.exact.client import open_client
from syncs.exact.tls import tls_context


def test_clients_build_no_tls_context_of_their_own_and_the_shared_one_verifies(
    client_settings: Settings,
    db: sessionmaker[Session],
    redis_client: Any,
    connection_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = tls_context()
    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    for _ in range(2):  # as a run's plan and its division open theirs
        with open_client(client_settings, connection_id, "nl", sessions=db, redis=redis_client):
            pass
    assert built == []
    assert tls_context() is shared
    assert shared.verify_mode is ssl.CERT_REQUIRED and shared.check_hostname
