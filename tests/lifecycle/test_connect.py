"""The OAuth connect flow through the CLI (local callback server) and over HTTP (`serve`), and its failures."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, Connection, ConnectionStatus, Division
from syncs.core.crypto import TokenCipher
from syncs.core.errors import ConfigurationError
from syncs.core.settings import Settings
from syncs.lifecycle.connect_flow import ConnectError, ConnectFlow
from syncs.sandbox.server import SandboxServer
from syncs.tokens.store import TokenStore
from tests.lifecycle.conftest import (
    CURRENT,
    SECOND,
    ServerThread,
    callback_params,
    connect_via_flow,
    consent,
    stored,
)
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock
from worker import cli_connect
from worker.runs import execute_sync
from worker.web import create_web_app


class FakeBrowser:
    """Replaces the real browser: follows Exact's consent redirect to our callback (optionally tampered with)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tamper: Any = None) -> None:
        self.tamper = tamper
        self.threads: list[threading.Thread] = []
        self.seen: list[str] = []
        monkeypatch.setattr(cli_connect, "browser_available", lambda: True)
        monkeypatch.setattr(cli_connect, "open_browser", self.open)

    def open(self, url: str) -> None:
        thread = threading.Thread(target=self.visit, args=(url,))
        self.threads.append(thread)
        thread.start()

    def visit(self, url: str) -> None:
        location = consent(url)
        if self.tamper is not None:
            location = self.tamper(location)
        self.seen.append(httpx.get(location).text)

    def pages(self) -> list[str]:
        for thread in self.threads:
            thread.join(10)
        return self.seen


def test_cli_connect_stores_tokens_and_divisions_then_syncs(
    cli: CliInvoke,
    monkeypatch: pytest.MonkeyPatch,
    db: sessionmaker[Session],
    sandbox: SandboxServer,
    life_settings: Settings,
) -> None:
    browser = FakeBrowser(monkeypatch)
    result = cli("connect", "acme", "--region", "nl")
    assert result.exit_code == 0, result.output
    assert "/api/oauth2/auth?" in result.output and "connection acme (nl) connected" in result.output
    assert "Connected" in browser.pages()[0]
    assert sandbox.state.counters.consents_given == 2  # the region check, then the user's consent
    with db() as session:
        acme = session.scalars(select(Connection)).one()
        assert (acme.status, acme.region, acme.current_division) == (ConnectionStatus.ACTIVE, "nl", CURRENT)
        codes = session.scalars(select(Division.code).where(Division.sync_enabled).order_by(Division.code)).all()
        assert list(codes) == [CURRENT, SECOND]
    key = life_settings.token_encryption_key
    assert key is not None
    assert TokenStore(db, TokenCipher(key.get_secret_value())).load(acme.id).access_token

    run = cli("run", "acme")
    assert run.exit_code == 0, run.output
    with db() as session:
        assert set(session.scalars(select(Account.division)).all()) == {CURRENT, SECOND}


def test_http_connect_then_sync(
    life_settings: Settings, db: sessionmaker[Session], clock: FakeClock, sandbox: SandboxServer
) -> None:
    port = urlsplit(life_settings.exact_redirect_uri).port
    assert port is not None
    with ServerThread(create_web_app(life_settings, clock), port) as web:
        assert httpx.get(f"{web.base_url}/health").json() == {"status": "ok"}
        page = httpx.get(f"{web.base_url}/connect/acme?region=be", follow_redirects=True)
        assert page.status_code == 200, page.text
        assert "Connection acme (be) connected" in page.text and str(SECOND) in page.text
        missing = httpx.get(f"{web.base_url}/connect/ghost")  # no region and no such connection
        assert missing.status_code == 400 and "--region" in missing.text
    outcome = execute_sync(life_settings, "acme", clock=clock)
    assert outcome.status == "succeeded" and outcome.divisions == (CURRENT, SECOND) and outcome.inserted > 0


def test_state_mismatch_stores_nothing(
    cli: CliInvoke, monkeypatch: pytest.MonkeyPatch, db: sessionmaker[Session], flow: ConnectFlow
) -> None:
    def swap_state(location: str) -> str:
        params = callback_params(location)
        params["state"] = "forged-state"
        return f"{location.split('?')[0]}?{urlencode(params)}"

    browser = FakeBrowser(monkeypatch, swap_state)
    result = cli("connect", "acme", "--region", "nl")
    assert result.exit_code == 1
    assert "state does not match" in result.output and "nothing was stored" in result.output
    assert "Not connected" in browser.pages()[0]
    assert stored(db) == (0, 0)

    # Over HTTP a state nobody issued is refused the same way.
    with pytest.raises(ConnectError, match="unknown, expired or already used state"):
        flow.complete("forged-state", "some-code")
    assert stored(db) == (0, 0)


def test_denied_consent_stores_nothing(
    cli: CliInvoke, monkeypatch: pytest.MonkeyPatch, db: sessionmaker[Session], sandbox: SandboxServer
) -> None:
    sandbox.state.configure(deny_consent=True)
    FakeBrowser(monkeypatch)
    result = cli("connect", "acme", "--region", "nl")
    assert result.exit_code == 1
    assert "consent was denied" in result.output and "exact-sync connect acme" in result.output
    assert stored(db) == (0, 0)


def test_reused_and_expired_codes_and_reused_state_store_nothing(
    flow: ConnectFlow, db: sessionmaker[Session], clock: FakeClock
) -> None:
    url, state = flow.begin("acme", "nl")
    params = callback_params(consent(url))
    assert set(params["code"]) & set("!+/=")  # a code that only works URL-decoded
    connected = flow.complete(state, params["code"])
    assert not connected.reconnected and stored(db) == (1, 1)

    with pytest.raises(ConnectError, match="already used state"):
        flow.complete(state, params["code"])  # the state is single use

    _, other_state = flow.begin("beta", "nl")
    with pytest.raises(ConnectError, match="single use and expire after 3 minutes"):
        flow.complete(other_state, params["code"])  # the code is single use
    assert stored(db) == (1, 1)

    url, late_state = flow.begin("gamma", "nl")
    late = callback_params(consent(url))
    clock.advance(181)
    with pytest.raises(ConnectError, match="expire after 3 minutes"):
        flow.complete(late_state, late["code"])
    assert stored(db) == (1, 1)
    with db() as session:
        assert session.scalars(select(Connection.name)).all() == ["acme"]


def test_wrong_region_says_check_region_and_stores_nothing(
    life_settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis[Any], sandbox: SandboxServer
) -> None:
    # Exact shows "Client with identifier '...' not found" for an app registered in another region.
    flow = ConnectFlow(life_settings.model_copy(update={"exact_client_id": "registered-in-uk"}), db, redis_client)
    with pytest.raises(ConnectError, match="check --region"):
        flow.begin("acme", "nl")
    assert sandbox.state.counters.authorize_refused == 1
    assert stored(db) == (0, 0)
    assert not list(redis_client.scan_iter(match=f"{life_settings.redis_key_prefix}:oauth-state:*"))


def test_connect_twice_reconnects_in_place(flow: ConnectFlow, db: sessionmaker[Session]) -> None:
    first = connect_via_flow(flow, "acme", "nl")
    second = connect_via_flow(flow, "acme", None)  # the region is remembered
    assert second.reconnected and second.connection_id == first.connection_id
    assert stored(db) == (1, 1)


def test_a_missing_encryption_key_fails_before_any_consent(
    cli: CliInvoke,
    monkeypatch: pytest.MonkeyPatch,
    life_settings: Settings,
    db: sessionmaker[Session],
    redis_client: redis.Redis[Any],
    sandbox: SandboxServer,
) -> None:
    """The key is checked before the consent URL exists: never after the single-use code was exchanged."""
    from syncs.core.settings import get_settings

    browser = FakeBrowser(monkeypatch)
    before = sandbox.state.counters
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", "")
    get_settings.cache_clear()
    keyless = cli("connect", "acme", "--region", "nl")
    assert keyless.exit_code == 2 and "TOKEN_ENCRYPTION_KEY is not set" in keyless.output, keyless.output
    assert "/api/oauth2/auth?" not in keyless.output and browser.pages() == []
    served = cli("serve", "--port", "1")  # at startup, before uvicorn listens
    assert served.exit_code == 2 and "TOKEN_ENCRYPTION_KEY is not set" in served.output, served.output

    no_key = life_settings.model_copy(update={"token_encryption_key": None})
    with pytest.raises(ConfigurationError, match="TOKEN_ENCRYPTION_KEY is not set"):
        ConnectFlow(no_key, db, redis_client)
    with pytest.raises(ConfigurationError, match="TOKEN_ENCRYPTION_KEY is not set"):
        create_web_app(no_key)
    assert sandbox.state.counters == before  # no region check, no consent, no code exchange reached Exact
    assert stored(db) == (0, 0)
    assert not list(redis_client.scan_iter(match=f"{life_settings.redis_key_prefix}:oauth-state:*"))
