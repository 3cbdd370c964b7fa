"""The OAuth connect flow through the CLI (local callback server) and over HTTP (`serve`), and its failures."""

from __future__ import annotations

import json
import socket
import threading
import time
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
from syncs.lifecycle.invites import create_invite
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
from worker.app import AUTO_SUBSCRIBE_TASK
from worker.callback import CallbackReceiver
from worker.runs import execute_sync
from worker.web import create_web_app


class FakeBrowser:
    """Replaces the real browser: follows Exact's consent redirect to our callback (after a tampered copy of it,
    when `tamper` is given)."""

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
        if self.tamper is not None:  # a forged callback first, then the genuine one
            self.seen.append(httpx.get(self.tamper(location)).text)
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


def connect_over_http(settings: Settings, db: sessionmaker[Session], clock: FakeClock) -> str:
    """Connection acme (region be) through `serve`'s invite page and Exact's consent; the page shown at the end."""
    port = urlsplit(settings.exact_redirect_uri).port
    assert port is not None
    key = settings.token_encryption_key
    assert key is not None
    made = create_invite(settings, db, TokenCipher(key.get_secret_value()), "acme", "be", clock=clock)
    with ServerThread(create_web_app(settings, clock), port) as web, httpx.Client() as browser:
        assert httpx.get(f"{web.base_url}/health").json() == {"status": "ok"}
        page = browser.post(made.url, follow_redirects=True)  # the invite page's button
        assert page.status_code == 200, page.text
        return page.text


def test_http_connect_then_sync(
    life_settings: Settings, db: sessionmaker[Session], clock: FakeClock, sandbox: SandboxServer
) -> None:
    page = connect_over_http(life_settings, db, clock)
    assert "Connection acme (be) connected" in page and str(SECOND) in page
    outcome = execute_sync(life_settings, "acme", clock=clock)
    assert outcome.status == "succeeded" and outcome.divisions == (CURRENT, SECOND) and outcome.inserted > 0


def test_http_connect_requests_the_automatic_webhook_subscription(
    life_settings: Settings, db: sessionmaker[Session], clock: FakeClock, redis_client: redis.Redis[bytes]
) -> None:
    """WEBHOOK_AUTO_SUBSCRIBE on: serve's OAuth callback sends the subscription task (tests/worker/
    test_auto_subscribe.py has a worker run it against the sandbox)."""
    update = {"webhook_auto_subscribe": True, "webhook_callback_url": "https://sync.example.com/webhooks/exact"}
    settings = life_settings.model_copy(update=update)
    assert "Connection acme (be) connected" in connect_over_http(settings, db, clock)
    raw = redis_client.lpop(f"{settings.celery_key_prefix}{settings.celery_queue}")
    assert raw is not None and json.loads(raw)["headers"]["task"] == AUTO_SUBSCRIBE_TASK
    with db() as session:
        assert (session.scalar(select(Connection.webhook_auto_subscribe)) or "").endswith(": requested")


def test_a_forged_state_neither_ends_nor_spoils_the_cli_flow(
    cli: CliInvoke, monkeypatch: pytest.MonkeyPatch, db: sessionmaker[Session], flow: ConnectFlow
) -> None:
    def swap_state(location: str) -> str:
        params = callback_params(location)
        params["state"] = "forged-state"
        return f"{location.split('?')[0]}?{urlencode(params)}"

    browser = FakeBrowser(monkeypatch, swap_state)
    result = cli("connect", "acme", "--region", "nl")
    assert result.exit_code == 0, result.output
    forged, genuine = browser.pages()
    assert "Not this consent" in forged and "Connected" in genuine
    assert stored(db) == (1, 1)

    # Over HTTP a state nobody issued is refused the same way.
    with pytest.raises(ConnectError, match="unknown, expired or already used state"):
        flow.complete("forged-state", "some-code", browser="any")
    assert stored(db) == (1, 1)


def test_the_cli_callback_server_outlives_silent_clients(life_settings: Settings) -> None:
    """A client that connects and sends nothing cannot hold the single-threaded server past its socket timeout."""
    receiver: CallbackReceiver[dict[str, str]] = CallbackReceiver(life_settings.exact_redirect_uri, socket_timeout=0.3)
    parts = urlsplit(life_settings.exact_redirect_uri)
    results: list[dict[str, str]] = []

    def expired() -> Exception:
        return ConnectError("timed out")

    waiter = threading.Thread(target=lambda: results.append(receiver.wait("s1", dict, 20, expired)), daemon=True)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80)):  # silent, held open
            waiter.start()
            time.sleep(0.1)
            answer = httpx.get(f"{life_settings.exact_redirect_uri}?state=s1&code=c", timeout=5)
            assert answer.status_code == 200
            waiter.join(5)
            assert results == [{"state": "s1", "code": "c"}]
    finally:
        receiver.close()


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
    connected = flow.complete(state, params["code"], expected_state=state)
    assert not connected.reconnected and stored(db) == (1, 1)

    with pytest.raises(ConnectError, match="already used state"):
        flow.complete(state, params["code"], expected_state=state)  # the state is single use

    _, other_state = flow.begin("beta", "nl")
    with pytest.raises(ConnectError, match="single use and expire after 3 minutes"):
        flow.complete(other_state, params["code"], expected_state=other_state)  # the code is single use
    assert stored(db) == (1, 1)

    url, late_state = flow.begin("gamma", "nl")
    late = callback_params(consent(url))
    clock.advance(181)
    with pytest.raises(ConnectError, match="expire after 3 minutes"):
        flow.complete(late_state, late["code"], expected_state=late_state)
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


def test_a_started_consent_expires_after_the_state_ttl(
    life_settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis[Any], clock: FakeClock
) -> None:
    flow = ConnectFlow(life_settings.model_copy(update={"oauth_state_ttl_seconds": 1}), db, redis_client, clock)
    url, state = flow.begin("acme", "nl")
    [key] = redis_client.scan_iter(match=f"{life_settings.redis_key_prefix}:oauth-state:*")
    assert 0 < redis_client.pttl(key) <= 1000  # Redis itself forgets the state: no clock of ours can keep it
    params = callback_params(consent(url))
    deadline = time.monotonic() + 5
    while redis_client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(ConnectError, match="unknown, expired or already used state"):
        flow.complete(state, params["code"], expected_state=state)
    assert stored(db) == (0, 0)
