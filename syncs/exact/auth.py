"""httpx authentication for Exact's API: a bearer token from the shared refresher, one retry after a 401."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from syncs.tokens.store import TokenRefresher


def says_expired(response: httpx.Response) -> bool:
    """Exact's 401 names an expired access token in WWW-Authenticate (`error_description="access token
    expired"`); an unknown or revoked token gets a bare `invalid_token` (or no header)."""
    return "expired" in response.headers.get("WWW-Authenticate", "").lower()


class ExactAuth(httpx.Auth):
    def __init__(self, refresher: TokenRefresher, connection_id: int) -> None:
        self._refresher = refresher
        self._connection_id = connection_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.reauthorize(request)
        response = yield request
        if response.status_code != 401:
            return
        # The transport may have put a newer token in after waiting for rate budget: that one was refused.
        token = request.headers["Authorization"].removeprefix("Bearer ")
        # Another worker may have refreshed already; otherwise this refreshes once (under the lock), but only
        # inside the refresh window or when Exact says the token expired (ExactRequestError otherwise).
        token = self._refresher.after_unauthorized(self._connection_id, token, expired=says_expired(response))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request  # a second 401 reaches the caller as a response

    def reauthorize(self, request: httpx.Request, *, refresh: bool = True) -> bool:
        """Put a currently valid access token on `request` (also called after a long wait for rate budget).

        With `refresh=False` it never refreshes: False (request unchanged) when a refresh is due.
        """
        if refresh:
            token: str | None = self._refresher.valid_access_token(self._connection_id)
        else:
            token = self._refresher.current_access_token(self._connection_id)
        if token is None:
            return False
        request.headers["Authorization"] = f"Bearer {token}"
        return True
