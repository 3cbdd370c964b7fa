"""A one-shot local HTTP server for `exact-sync connect`: receives Exact's redirect on EXACT_REDIRECT_URI.

The standard library's HTTPServer is enough: it serves one request at a time in the calling thread, so the
code exchange happens while the browser waits and the page it gets says whether connecting worked. Each socket
gets a timeout (a client that connects and sends nothing cannot hold the single thread), and only a request
carrying the state this flow sent ends it: anything else gets a 400 and the server keeps waiting.
"""

from __future__ import annotations

import hmac
import html
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

from syncs.core.errors import ConfigurationError, ExactSyncError

T = TypeVar("T")
SOCKET_TIMEOUT_SECONDS = 10.0


def page(title: str, message: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    ).encode()


class CallbackReceiver(Generic[T]):
    """Listens on the redirect URI's host and port; `wait` hands the callback's query to `finish`."""

    def __init__(self, redirect_uri: str, socket_timeout: float = SOCKET_TIMEOUT_SECONDS) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigurationError(
                f"EXACT_REDIRECT_URI {redirect_uri!r} is not a plain http:// address this machine can listen on; "
                "for an https redirect use `exact-sync serve` behind your TLS proxy"
            )
        self.path = parts.path or "/"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = socket_timeout  # applied to each accepted socket

            def do_GET(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: object) -> None:  # quiet: the query holds the code
                return

        try:
            self._server = HTTPServer((parts.hostname, parts.port or 80), Handler)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {parts.hostname}:{parts.port or 80} for the OAuth callback ({exc.strerror}); "
                "is `exact-sync serve` running there? Then open its /connect/NAME page instead"
            ) from None
        self._finish: Callable[[dict[str, str]], T] | None = None
        self._state = ""
        self._result: T | None = None
        self._error: ExactSyncError | None = None
        self._done = False

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        if parts.path != self.path or self._finish is None or self._done:
            self._respond(request, 404, page("Not found", "This address only receives Exact Online's redirect."))
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))  # URL-decodes the code
        if not hmac.compare_digest(params.get("state", "").encode(), self._state.encode()):
            self._respond(request, 400, page("Not this consent", "This callback does not belong to this connect."))
            return
        self._done = True
        try:
            self._result = self._finish(params)
        except ExactSyncError as exc:
            self._error = exc
            self._respond(request, 400, page("Not connected", str(exc)))
            return
        self._respond(request, 200, page("Connected", "You can close this window and return to the terminal."))

    @staticmethod
    def _respond(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.end_headers()
        request.wfile.write(body)

    def wait(
        self,
        state: str,
        finish: Callable[[dict[str, str]], T],
        timeout: float,
        on_timeout: Callable[[], Exception],
    ) -> T:
        """Serve requests until the callback carrying `state` arrived (then return `finish`'s result or raise)."""
        self._state = state
        self._finish = finish
        deadline = time.monotonic() + timeout
        self._server.timeout = 0.5
        while not self._done:
            if time.monotonic() > deadline:
                raise on_timeout()
            self._server.handle_request()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def close(self) -> None:
        self._server.server_close()
