"""`serve` as an attacker meets it: invites, the browser-bound callback, names, and what unauthenticated requests
cost. Real HTTP against the served app and the sandbox; Redis and Postgres are real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import ConnectInvite, Connection
from syncs.core.crypto import TokenCipher
from syncs.core.errors import ConfigurationError
from syncs.core.settings import Settings
from syncs.lifecycle.connect_flow import ConnectError, ConnectFlow
from syncs.lifecycle.invites import Invite, create_invite, parse_duration
from syncs.sandbox.server import SandboxServer
from syncs.tokens.store import TokenStore
from tests.lifecycle.conftest import ServerThread, callback_params, connect_via_flow, consent, stored
from tests.support.clock import FakeClock
from tests.support.net import free_port
from worker.web import create_web_app


@pytest.fixture
def cipher(life_settings: Settings) -> TokenCipher:
    key = life_settings.token_encryption_key
    assert key is not None
    return TokenCipher(key.get_secret_value())


@pytest.fixture
def web(life_settings: Settings, clock: FakeClock) -> Iterator[ServerThread]:
    port = urlsplit(life_settings.exact_redirect_uri).port
    assert port is not None
    with ServerThread(create_web_app(life_settings, clock), port) as server:
        yield server


def invite(
    life_settings: Settings, db: sessionmaker[Session], cipher: TokenCipher, clock: FakeClock, name: str, **kw: Any
) -> Invite:
    return create_invite(life_settings, db, cipher, name, clock=clock, **kw)


def redis_keys(redis_client: redis.Redis[Any], settings: Settings, kind: str = "*") -> list[bytes]:
    return list(redis_client.scan_iter(match=f"{settings.redis_key_prefix}:{kind}"))


def start(browser: httpx.Client, url: str) -> httpx.Response:
    """Open an invite link and press its button: Exact's consent URL (303), with the flow cookie set."""
    page = browser.get(url)
    assert page.status_code == 200 and "<form method='post'" in page.text, page.text
    return browser.post(url)


def test_connect_without_an_invite_is_refused_and_costs_nothing(
    web: ServerThread,
    life_settings: Settings,
    db: sessionmaker[Session],
    cipher: TokenCipher,
    clock: FakeClock,
    sandbox: SandboxServer,
    redis_client: redis.Redis[Any],
) -> None:
    other = invite(life_settings, db, cipher, clock, "other", region="nl")
    token = other.url.split("invite=")[1]
    before = sandbox.state.counters
    attempts = [
        f"{web.base_url}/connect/acme?region=nl",  # what the README used to advertise
        f"{web.base_url}/connect/acme?invite=not-an-invite",
        f"{web.base_url}/connect/acme?invite={token}",  # another name's invite
        f"{web.base_url}/connect/acme%00?invite={token}",
    ]
    for url in attempts:
        for method in ("GET", "POST"):
            response = httpx.request(method, url)
            assert response.status_code == 403, (method, url, response.text)
            assert "not valid" in response.text and "set-cookie" not in response.headers
    assert sandbox.state.counters == before  # no call reached Exact
    assert redis_keys(redis_client, life_settings) == []  # and no Redis key was created
    assert stored(db) == (0, 0)
    with db() as session:
        assert session.scalar(select(ConnectInvite.used_at)) is None  # the other invite is still usable


def test_an_invite_connects_once_in_its_browser(
    web: ServerThread,
    life_settings: Settings,
    db: sessionmaker[Session],
    cipher: TokenCipher,
    clock: FakeClock,
    redis_client: redis.Redis[Any],
) -> None:
    made = invite(life_settings, db, cipher, clock, "acme", region="be")
    assert made.url.startswith(f"{web.base_url}/connect/acme?invite=") and not made.reconnect
    with db() as session:  # only a keyed hash is stored
        row = session.scalars(select(ConnectInvite)).one()
        assert made.url.split("invite=")[1].encode() not in row.token_hash and len(row.token_hash) == 32
    with httpx.Client() as browser:
        started = start(browser, made.url)
        assert started.status_code == 303 and "/api/oauth2/auth?" in started.headers["location"]
        cookie = started.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/oauth/callback" in cookie
        page = browser.get(consent(started.headers["location"]))
        assert page.status_code == 200 and "Connection acme (be) connected" in page.text, page.text
        again = browser.post(made.url)  # single use
        assert again.status_code == 403
    assert stored(db) == (1, 1)
    assert redis_keys(redis_client, life_settings, "oauth-state:*") == []  # the state was used up

    expired = invite(life_settings, db, cipher, clock, "beta", region="nl", expires_in=parse_duration("30m"))
    clock.advance(31 * 60)
    assert httpx.get(expired.url).status_code == 403


def test_reconnecting_needs_an_invite_for_that_name_and_keeps_the_region(
    web: ServerThread,
    life_settings: Settings,
    db: sessionmaker[Session],
    cipher: TokenCipher,
    clock: FakeClock,
    flow: ConnectFlow,
) -> None:
    first = connect_via_flow(flow, "acme", "nl")
    store = TokenStore(db, cipher)
    owner_token = store.load(first.connection_id).refresh_token
    beta = invite(life_settings, db, cipher, clock, "beta", region="be")
    with httpx.Client() as browser:
        for url in (f"{web.base_url}/connect/acme?region=be", beta.url.replace("/connect/beta", "/connect/acme")):
            assert browser.post(url).status_code == 403
    assert store.load(first.connection_id).refresh_token == owner_token

    with pytest.raises(ConfigurationError, match="is in region 'nl'"):
        invite(life_settings, db, cipher, clock, "acme", region="be")
    with pytest.raises(ConfigurationError, match="reconnecting keeps its region"):
        flow.begin("acme", "be")
    again = invite(life_settings, db, cipher, clock, "acme")
    assert again.reconnect and again.region == "nl"
    with httpx.Client() as browser:
        started = start(browser, again.url)
        page = browser.get(consent(started.headers["location"]))
        assert "Connection acme (nl) reconnected" in page.text, page.text
    with db() as session:
        assert session.scalars(select(Connection.region)).all() == ["nl"]
    assert store.load(first.connection_id).refresh_token != owner_token


def test_a_callback_without_the_starting_browsers_cookie_changes_nothing(
    web: ServerThread,
    life_settings: Settings,
    db: sessionmaker[Session],
    cipher: TokenCipher,
    clock: FakeClock,
    sandbox: SandboxServer,
) -> None:
    """The attack: start a consent for your own connection, send Exact's consent link to a victim, and let the
    victim's company land in your connection. The victim's browser lacks the cookie: no exchange happens."""
    made = invite(life_settings, db, cipher, clock, "attackerco", region="nl")
    with httpx.Client() as attacker:
        consent_url = start(attacker, made.url).headers["location"]
        callback = consent(consent_url)  # the victim consents at Exact
        before = sandbox.state.counters.token_requests
        with httpx.Client() as victim:
            refused = victim.get(callback)
            assert refused.status_code == 400 and "not started in this browser" in refused.text
        with httpx.Client(cookies={name: "guess" for name in attacker.cookies}) as forger:
            assert forger.get(callback).status_code == 400
        assert sandbox.state.counters.token_requests == before  # the victim's code was never exchanged
        assert stored(db) == (0, 0)
        # The state was not used up by the refused callbacks: its owner's browser can still finish.
        assert "Connection attackerco (nl) connected" in attacker.get(callback).text


def test_names_follow_one_rule_everywhere(
    web: ServerThread,
    life_settings: Settings,
    db: sessionmaker[Session],
    cipher: TokenCipher,
    clock: FakeClock,
    flow: ConnectFlow,
) -> None:
    for bad in ("acme\x1b[31m", "acme\x00", "", "a" * 65, "ac me", "acme/../x", "ácme"):
        with pytest.raises(ConfigurationError, match="invalid connection name"):
            invite(life_settings, db, cipher, clock, bad, region="nl")
        with pytest.raises(ConfigurationError, match="invalid connection name"):
            flow.begin(bad, "nl")
    good = invite(life_settings, db, cipher, clock, "Acme_B.V-2", region="nl")
    assert good.name == "Acme_B.V-2" and httpx.get(good.url).status_code == 200


def test_nothing_is_exchanged_when_the_pending_consent_does_not_check_out(
    life_settings: Settings,
    db: sessionmaker[Session],
    flow: ConnectFlow,
    redis_client: redis.Redis[Any],
    sandbox: SandboxServer,
) -> None:
    """Everything is checked before the single-use code is spent: a bad name (once a NUL failed with a 500 after
    the exchange), a region that no longer matches the connection, a malformed code."""
    url, state = flow.begin("acme", "nl")
    code = callback_params(consent(url))["code"]
    key = f"{life_settings.redis_key_prefix}:oauth-state:" + __import__("hashlib").sha256(state.encode()).hexdigest()
    pending = json.loads(redis_client.get(key) or b"{}")
    redis_client.set(key, json.dumps({**pending, "name": "acme\x00"}))
    before = sandbox.state.counters.token_requests
    with pytest.raises(ConnectError, match="unreadable"):
        flow.complete(state, code, expected_state=state)

    connect_via_flow(flow, "acme", "nl")
    url, state = flow.begin("newco", "nl")
    code = callback_params(consent(url))["code"]
    with db.begin() as session:  # meanwhile someone registered newco in another region
        session.add(Connection(name="newco", region="be"))
    before = sandbox.state.counters.token_requests
    with pytest.raises(ConnectError, match="region never changes"):
        flow.complete(state, code, expected_state=state)
    url, state = flow.begin("acme", None)
    with pytest.raises(ConnectError, match="malformed"):
        flow.complete(state, "x" * 5000, expected_state=state)
    assert sandbox.state.counters.token_requests == before
    with db() as session:
        assert session.scalar(select(Connection.region).where(Connection.name == "newco")) == "be"


def test_invite_durations() -> None:
    assert parse_duration("24h") == timedelta(hours=24) and parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("7d") == timedelta(days=7) and parse_duration("30m") == timedelta(minutes=30)
    for bad in ("0", "31d", "-1h", "soon", "1w", "99999999999999999999h", "1e400"):
        with pytest.raises(ConfigurationError):
            parse_duration(bad)


def test_the_admin_issues_invites_over_http(
    life_settings: Settings, db: sessionmaker[Session], clock: FakeClock, web: ServerThread
) -> None:
    url = f"{web.base_url}/admin/invites"
    assert httpx.post(url, json={"name": "acme", "region": "nl"}).status_code == 404  # no SERVE_ADMIN_TOKEN: off
    web.__exit__()
    settings = life_settings.model_copy(update={"serve_admin_token": SecretStr("admin-secret-token")})
    with ServerThread(create_web_app(settings, clock), web.port) as admin_web:
        url = f"{admin_web.base_url}/admin/invites"
        assert httpx.post(url, json={"name": "acme", "region": "nl"}).status_code == 401
        auth = {"Authorization": "Bearer admin-secret-token"}
        made = httpx.post(url, json={"name": "acme", "region": "nl", "expires": "2h"}, headers=auth)
        assert made.status_code == 201, made.text
        body = made.json()
        assert (body["name"], body["region"], body["reconnect"]) == ("acme", "nl", False)
        assert httpx.get(body["url"]).status_code == 200  # the link works
        bad = httpx.post(url, json={"name": "acme\x1b", "region": "nl"}, headers=auth)
        assert bad.status_code == 400 and "invalid connection name" in bad.json()["error"]
        assert httpx.post(url, content=b"not json", headers=auth).status_code == 400
        assert httpx.post(url, json={"name": "x", "region": "nl", "expires": 5}, headers=auth).status_code == 400
    with db() as session:
        assert session.scalars(select(ConnectInvite.name)).all() == ["acme"]


def test_an_invite_survives_a_start_that_cannot_store_its_state(
    life_settings: Settings, db: sessionmaker[Session], cipher: TokenCipher, clock: FakeClock, web: ServerThread
) -> None:
    """Redis down when the button is pressed: a clear 503, and the invite is not spent (no consent happened).
    Any route meeting a dead Redis or Postgres says so the same way instead of a bare 500."""
    made = invite(life_settings, db, cipher, clock, "acme", region="nl")
    dead_redis = life_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with ServerThread(create_web_app(dead_redis, clock), free_port()) as broken:
        refused = httpx.post(made.url.replace(web.base_url, broken.base_url))
        callback = httpx.get(f"{broken.base_url}/oauth/callback", params={"state": "s", "code": "c"})
    assert refused.status_code == 503 and "try again" in refused.text.lower(), refused.text
    assert "set-cookie" not in refused.headers
    assert callback.status_code == 503 and "try again" in callback.text.lower(), callback.text
    dead_postgres = life_settings.model_copy(
        update={"database_url": f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x"}
    )
    with ServerThread(create_web_app(dead_postgres, clock), free_port()) as broken:
        page = httpx.get(made.url.replace(web.base_url, broken.base_url))
    assert page.status_code == 503 and "try again" in page.text.lower(), page.text
    with db() as session:
        assert session.scalar(select(ConnectInvite.used_at)) is None
    with httpx.Client() as browser:  # the same link still works once Redis is back
        assert start(browser, made.url).status_code == 303
