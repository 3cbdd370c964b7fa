"""The HTTP clients a thread opens share one verifying TLS context (syncs.exact.tls): building one per client cost
about 15 ms each, and a run opens an API client and a token client for its plan and again for each division.
Other threads get contexts of their own (httpcore changes a context at each connection)."""

from __future__ import annotations

import ssl
import threading
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


def test_each_thread_has_a_context_of_its_own() -> None:
    found: list[ssl.SSLContext] = []
    other = threading.Thread(target=lambda: found.append(tls_context()))
    other.start()
    other.join()
    assert found[0] is not tls_context() and found[0].verify_mode is ssl.CERT_REQUIRED
