"""Connecting through OAuth (authorization-code flow): begin -> Exact's consent page -> complete.

The CLI (`exact-sync connect`, with a one-shot local callback server) and the web app (`exact-sync serve`) are
thin layers over `ConnectFlow`.

- `state` is 32 random bytes (secrets), bound to the connection being made (name, region, redirect URI). Pending
  states live in Redis under a hash of the state with a TTL (OAUTH_STATE_TTL_SECONDS) and are taken with GETDEL,
  so each is single use even with several web processes. Redis rather than Postgres: a pending consent is
  ephemeral, the TTL cleans up abandoned ones without a job, and GETDEL makes "use once" atomic. A Redis flush
  costs no more than starting the consent again.
- The code is exchanged at once (Exact's codes live 3 minutes and are single use). Query parsing URL-decodes it;
  a code still holding '%' (pasted raw) is decoded once more: Exact's codes never contain a literal '%'.
- TOKEN_ENCRYPTION_KEY is checked when the flow is created, before any consent URL exists (`connect` fails at
  once, `serve` at startup), so a missing key never wastes a consent.
- Nothing is stored before the exchange succeeded; the connection row and its tokens are then written in one
  transaction. Connecting an existing name (e.g. one in reauth_required) replaces its tokens, keeps its
  cursors, divisions and data, and makes it active again. Its region never changes: a flow for another region
  is refused before any consent URL exists, and again before the code is exchanged.
- A flow is bound to whoever started it: `serve` passes a random browser nonce (kept in an HttpOnly cookie) whose
  hash is stored with the state, and the callback must present it; `connect` passes the state it sent (its
  local server only hands over a callback carrying that state). A callback failing that check changes nothing:
  the state stays pending for its rightful owner and no code is exchanged.
- Everything is checked before the code is exchanged (state, binding, name, region, the code's shape), since
  the code is single use and a failure afterwards wastes the user's consent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

import httpx
import redis
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus
from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.crypto import TokenCipher
from syncs.core.errors import (
    ConfigurationError,
    ExactRequestError,
    ExactSyncError,
    FatalError,
    ReauthRequiredError,
    TokenRefreshError,
)
from syncs.core.settings import Settings
from syncs.exact.client import open_client
from syncs.exact.exact_time import exact_time_for
from syncs.exact.oauth import OAuthClient
from syncs.exact.tls import tls_context
from syncs.lifecycle.connections import add_connection, validate_name, validate_region
from syncs.lifecycle.divisions import ListedDivision, refresh_divisions
from syncs.tokens.pair import TokenPair
from syncs.tokens.store import TokenStore

log = structlog.get_logger(__name__)

NOTHING_STORED = "nothing was stored"
MAX_CODE_LENGTH = 4096


class ConnectError(FatalError):
    """The connect flow stopped; the message says what the user can do. Nothing was stored."""


@dataclass(frozen=True)
class Connected:
    connection_id: int
    name: str
    region: str
    reconnected: bool
    divisions: list[ListedDivision]
    divisions_error: str | None = None  # discovery failed; the first run tries again


def authorization_url(base_url: str, client_id: str, redirect_uri: str, state: str | None) -> str:
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "force_login": "0"}
    if state is not None:
        params["state"] = state
    return f"{base_url.rstrip('/')}/api/oauth2/auth?{urlencode(params)}"


class ConnectFlow:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        redis_client: redis.Redis[Any],
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not settings.exact_client_id or settings.exact_client_secret is None:
            raise ConfigurationError("EXACT_CLIENT_ID and EXACT_CLIENT_SECRET must be set to connect")
        # Before any consent URL is handed out: a missing or bad TOKEN_ENCRYPTION_KEY found only after the
        # single-use code was exchanged would waste the user's consent.
        key = settings.token_encryption_key
        self._cipher = TokenCipher(key.get_secret_value() if key else None)
        self.settings = settings
        self.redirect_uri = settings.exact_redirect_uri
        self._client_id = settings.exact_client_id
        self._client_secret = settings.exact_client_secret.get_secret_value()
        self._sessions = sessions
        self._redis = redis_client
        self._clock = clock
        self._transport = transport

    @property
    def cipher(self) -> TokenCipher:
        return self._cipher

    # -- begin -----------------------------------------------------------------------------------------------

    def begin(
        self, name: str, region: str | None = None, *, browser: str | None = None, check_client: bool = True
    ) -> tuple[str, str]:
        """(authorization URL, state). Region defaults to an existing connection's region (and may not differ).

        `browser`: the nonce of the browser that starts the flow (`serve`); its callback must present it again.
        """
        name = validate_name(name)
        region = self._region_for(name, region)
        if check_client:
            self.check_client(region)
        state = secrets.token_urlsafe(32)
        pending = {"name": name, "region": region, "redirect_uri": self.redirect_uri}
        if browser is not None:
            pending["browser"] = _digest(browser)
        self._redis.set(self._key(state), json.dumps(pending), ex=self.settings.oauth_state_ttl_seconds)
        url = authorization_url(self.settings.base_url_for(region), self._client_id, self.redirect_uri, state)
        log.info("connect.begun", connection=name, region=region)
        return url, state

    def _region_for(self, name: str, region: str | None) -> str:
        with self._sessions() as session:
            existing = session.scalar(select(Connection.region).where(Connection.name == name))
        if region is not None:
            region = validate_region(region)
            if existing is not None and region != existing:
                raise ConfigurationError(
                    f"connection {name!r} is in region {existing!r}; reconnecting keeps its region (remove the "
                    "connection first to connect it in another region)"
                )
            return region
        if existing is None:
            raise ConfigurationError(f"connection {name!r} does not exist yet: give its region with --region")
        return existing

    def check_client(self, region: str) -> None:
        """Ask Exact's consent page whether it knows our client id in this region (the page Exact shows for an
        app registered in another region says "Client with identifier ... not found")."""
        base = self.settings.base_url_for(region)
        url = authorization_url(base, self._client_id, self.redirect_uri, None)
        try:
            with httpx.Client(
                transport=self._transport, timeout=self.settings.http_timeout_seconds, verify=tls_context()
            ) as http:
                response = http.get(url, follow_redirects=False)
        except httpx.HTTPError as exc:
            log.warning("connect.check_failed", region=region, error=type(exc).__name__)
            return  # the browser will show what is wrong
        if response.status_code == 400 and "not found" in response.text.lower():
            raise ConnectError(
                f"Exact Online at {base} does not know client id {self._client_id!r}: check --region "
                f"(an app is registered in one region; asked: {region}) and EXACT_CLIENT_ID; {NOTHING_STORED}"
            )

    # -- complete --------------------------------------------------------------------------------------------

    def complete(
        self,
        state: str | None,
        code: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
        *,
        expected_state: str | None = None,
        browser: str | None = None,
    ) -> Connected:
        """Finish a consent: check `state` and who presents it, use it up, exchange `code`, store the tokens.

        `expected_state` (the CLI's own flow) or `browser` (the nonce `serve` gave the starting browser) must
        match what `begin` recorded; otherwise nothing changes and the state stays pending.
        """
        if expected_state is not None and not _same(state, expected_state):
            raise ConnectError(
                f"the callback's state does not match the one this connect sent; {NOTHING_STORED} "
                "(start again with `exact-sync connect NAME`)"
            )
        unknown = f"unknown, expired or already used state; {NOTHING_STORED} (ask for a new connect link)"
        pending = self._peek(state) if state else None
        if pending is None or state is None:
            raise ConnectError(unknown)
        bound = pending.get("browser")
        if (bound is None and expected_state is None) or (
            bound is not None and (browser is None or not _same(_digest(browser), bound))
        ):
            log.warning("connect.callback_unbound", connection=pending.get("name"))
            raise ConnectError(
                "this consent was not started in this browser (the cookie set when it started is missing); "
                f"{NOTHING_STORED}: open the connect link in the browser you give consent with"
            )
        if self._take(state) is None:  # taken by a concurrent callback since we looked
            raise ConnectError(unknown)
        name, region, redirect_uri = self._checked(pending)
        again = f"ask for a new connect link for {name} (or run `exact-sync connect {name}`)"
        if error:
            if error == "access_denied":
                raise ConnectError(f"consent was denied in Exact Online; {NOTHING_STORED}: {again} and allow access")
            detail = f": {error_description}" if error_description else ""
            raise ConnectError(f"Exact Online answered {error}{detail}; {NOTHING_STORED}: {again}")
        if not code:
            raise ConnectError(f"the callback carried neither a code nor an error; {NOTHING_STORED}: {again}")
        if len(code) > MAX_CODE_LENGTH or not code.isprintable():
            raise ConnectError(f"the callback's code is malformed; {NOTHING_STORED}: {again}")
        self._check_region_unchanged(name, region)
        pair = self._exchange(region, redirect_uri, unquote(code) if "%" in code else code, again)
        connection_id, reconnected = self._store(name, region, pair)
        log.info("connect.completed", connection=name, region=region, reconnected=reconnected)
        listed, problem = self._discover(connection_id, region)
        return Connected(connection_id, name, region, reconnected, listed, problem)

    def abandon(self, state: str) -> None:
        self._redis.delete(self._key(state))

    def _peek(self, state: str) -> dict[str, str] | None:
        raw = self._redis.get(self._key(state))
        return json.loads(raw) if raw else None

    def _take(self, state: str) -> dict[str, str] | None:
        raw = self._redis.getdel(self._key(state))
        return json.loads(raw) if raw else None

    def _checked(self, pending: dict[str, str]) -> tuple[str, str, str]:
        """The pending flow's name, region and redirect URI, validated again (Redis is not our database)."""
        try:
            return validate_name(pending["name"]), validate_region(pending["region"]), pending["redirect_uri"]
        except (KeyError, ConfigurationError) as exc:
            raise ConnectError(f"the pending consent is unreadable ({exc}); {NOTHING_STORED}") from None

    def _check_region_unchanged(self, name: str, region: str) -> None:
        with self._sessions() as session:
            existing = session.scalar(select(Connection.region).where(Connection.name == name))
        if existing is not None and existing != region:
            raise ConnectError(
                f"connection {name!r} is in region {existing!r}, this consent was for {region!r}; {NOTHING_STORED} "
                "(a connection's region never changes)"
            )

    def _key(self, state: str) -> str:
        return f"{self.settings.redis_key_prefix}:oauth-state:{_digest(state)}"

    def _exchange(self, region: str, redirect_uri: str, code: str, again: str) -> TokenPair:
        oauth = OAuthClient(
            self.settings.base_url_for(region),
            self._client_id,
            self._client_secret,
            clock=self._clock,
            timeout=self.settings.http_timeout_seconds,
            transport=self._transport,
            exact_time=exact_time_for(self.settings, self._redis, self._clock, region),
        )
        try:
            return oauth.exchange_code(code, redirect_uri)
        except ReauthRequiredError as exc:
            raise ConnectError(
                f"Exact refused the authorization code (codes are single use and expire after 3 minutes): "
                f"{again}; {NOTHING_STORED} [{exc}]"
            ) from None
        except ExactRequestError as exc:
            raise ConnectError(
                f"Exact refused the code exchange ({exc}): check EXACT_CLIENT_ID, EXACT_CLIENT_SECRET and the "
                f"region; {NOTHING_STORED}"
            ) from None
        except TokenRefreshError as exc:
            raise ConnectError(f"{exc}; {NOTHING_STORED}: {again}") from None
        finally:
            oauth.close()

    def _store(self, name: str, region: str, pair: TokenPair) -> tuple[int, bool]:
        store = TokenStore(self._sessions, self._cipher)
        with self._sessions.begin() as session:
            existing = session.scalar(select(Connection).where(Connection.name == name).with_for_update())
            if existing is None:
                interval = self.settings.default_sync_interval_minutes
                created = add_connection(session, store, name, region, pair, interval=interval)
                return created.id, False
            if existing.region != region:  # checked before the exchange; a concurrent change lands here
                raise ConnectError(f"connection {name!r} moved to region {existing.region!r} meanwhile")
            existing.status = ConnectionStatus.ACTIVE
            existing.status_reason = None
            existing.next_sync_at = None  # due at the next beat tick
            existing.divisions_checked_at = None  # the new consent may cover other divisions
            store.save(session, existing.id, pair)
            return existing.id, True

    def _discover(self, connection_id: int, region: str) -> tuple[list[ListedDivision], str | None]:
        try:
            with open_client(
                self.settings,
                connection_id,
                region,
                sessions=self._sessions,
                redis=self._redis,
                clock=self._clock,
                transport=self._transport,
            ) as client:
                return refresh_divisions(self._sessions, connection_id, client, self._clock), None
        except ExactSyncError as exc:
            log.warning("connect.divisions_failed", connection_id=connection_id, error=str(exc))
            return [], f"{type(exc).__name__}: {exc}"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
