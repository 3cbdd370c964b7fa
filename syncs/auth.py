"""httpx authentication for Exact's API: a bearer token from the shared refresher, one retry after a 401."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from syncs.tokens import TokenRefresher


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
        # Another worker may have refreshed already; otherwise this refreshes once (under the lock).
        token = self._refresher.after_unauthorized(self._connection_id, token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request  # a second 401 reaches the caller as a response

    def reauthorize(self, request: httpx.Request) -> None:
        """Put a currently valid access token on `request` (also called after a long wait for rate budget)."""
        token = self._refresher.valid_access_token(self._connection_id)
        request.headers["Authorization"] = f"Bearer {token}"
