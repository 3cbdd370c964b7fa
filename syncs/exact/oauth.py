"""Exact Online's token endpoint: refresh and code exchange, with its errors mapped onto syncs.core.errors.

`received_at` is Exact's time of the answer (its `Date` header, rounded up; see syncs/exact/exact_time.py), so the
refresh window is kept in Exact's time; every answer also feeds the estimate of Exact's clock against ours.

No part of a token-endpoint body ever goes into an error message: a 200 body holds tokens (even a truncated or
garbled one), and these messages are logged, stored (connection_tokens.last_refresh_error) and shown by `status`.
A message names the HTTP status, content type and length instead; only the OAuth fields `error` and
`error_description` of a refusal are quoted.
"""

from __future__ import annotations

import httpx
import orjson
import structlog

from syncs.core.clock import Clock
from syncs.core.errors import ExactRequestError, MalformedResponseError, ReauthRequiredError, TokenRefreshError
from syncs.exact.exact_time import ExactTime
from syncs.exact.odata import oauth_error
from syncs.exact.tls import tls_context
from syncs.tokens.pair import TokenPair

log = structlog.get_logger(__name__)

# Markers (lower case) of a dead refresh token: only new consent helps.
_REAUTH_ERRORS = ("invalid_grant", "unauthorized_client")
_REAUTH_TEXT = ("old refresh token", "refresh token expired", "revoked", "invalid or empty chainid")


class OAuthClient:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        clock: Clock,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        exact_time: ExactTime | None = None,
    ) -> None:
        self.token_url = f"{base_url.rstrip('/')}/api/oauth2/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        # Without a shared one (Redis), this client keeps its own estimate from the answers it gets.
        self.exact_time = exact_time or ExactTime(clock, base_url.rstrip("/"))
        self._http = httpx.Client(
            timeout=timeout, transport=transport, headers={"Accept": "application/json"}, verify=tls_context()
        )

    def refresh(self, refresh_token: str) -> TokenPair:
        return self._request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def exchange_code(self, code: str, redirect_uri: str) -> TokenPair:
        return self._request({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    def close(self) -> None:
        self._http.close()

    def _request(self, form: dict[str, str]) -> TokenPair:
        grant = form["grant_type"]
        data = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        sent = self._clock.now()
        try:
            response = self._http.post(self.token_url, data=data)
        except httpx.TimeoutException:
            raise TokenRefreshError(f"token endpoint ({grant}) timed out") from None
        except httpx.TransportError as exc:
            raise TokenRefreshError(f"token endpoint ({grant}) unreachable: {type(exc).__name__}") from None
        received = self._clock.now()
        self.exact_time.observe(sent, received, response.headers, save=True)
        received_at = self.exact_time.stamped(received, response.headers)
        if response.status_code >= 500 or response.status_code == 429:
            raise TokenRefreshError(f"token endpoint ({grant}) answered {response.status_code}")
        if response.status_code != 200:
            raise _refusal(response, grant)
        try:
            return _pair(orjson.loads(response.content), received_at)
        except (ValueError, UnicodeDecodeError):
            problem = "not JSON"
        except MalformedResponseError as exc:
            problem = str(exc)  # our own words, never the body's
        # The refresh token may already be rotated; nothing to do but report it and try again later.
        raise TokenRefreshError(f"token endpoint ({grant}) sent an unreadable body ({problem}; {_shape(response)})")


def _refusal(response: httpx.Response, grant: str) -> Exception:
    error, description = oauth_error(response.content)
    text = " ".join(filter(None, (error, description)))
    if not text:
        # Not an OAuth error body: look for the markers in it, but quote only our own marker, never the body.
        body = response.content.decode(errors="replace").lower()
        seen = next((marker for marker in (*_REAUTH_TEXT, "access token not expired") if marker in body), None)
        text = f"{_shape(response)}" + (f", mentioning {seen!r}" if seen else "")
    lowered = text.lower()
    message = f"token endpoint ({grant}) refused with {response.status_code}: {text}"
    if "access token not expired" in lowered:
        # We asked too early: a bug on our side. Never retried (Exact counts it against the key).
        return ExactRequestError(message, 401)
    if error in _REAUTH_ERRORS or any(marker in lowered for marker in _REAUTH_TEXT):
        return ReauthRequiredError(message)
    if grant == "authorization_code" and response.status_code in (400, 401):
        return ReauthRequiredError(message)
    return ExactRequestError(message, response.status_code)


def _shape(response: httpx.Response) -> str:
    """What may be said about a token-endpoint body: status, content type and length, never its content."""
    content_type = response.headers.get("content-type") or "no content type"
    return f"HTTP {response.status_code}, {content_type}, {len(response.content)} bytes"


def _pair(document: object, received_at: float) -> TokenPair:
    if not isinstance(document, dict):
        raise MalformedResponseError("token response is not an object")
    access, refresh, expires = (document.get(k) for k in ("access_token", "refresh_token", "expires_in"))
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise MalformedResponseError("token response lacks access_token or refresh_token")
    try:
        expires_in = float(expires)  # type: ignore[arg-type]  # Exact sends a string ("600")
    except (TypeError, ValueError):
        raise MalformedResponseError(
            f"token response has an unreadable expires_in (a {type(expires).__name__})"
        ) from None
    return TokenPair(access, refresh, received_at, expires_in)
