"""The Starlette application: Exact's OAuth and REST routes, the control API, Exact-shaped 404/405, and a `Date`
header on every answer from the sandbox's own clock (so a skewed sandbox shows its skew, as Exact would)."""

from __future__ import annotations

from email.utils import formatdate

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncs.sandbox import api, control, oauth, webhook_api, writes
from syncs.sandbox.responses import exact_error
from syncs.sandbox.state import SandboxState


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "Resource not found", 405: "Method not allowed"}.get(status, "Error")
    return exact_error(status, message)


class ExactDate:
    """Sets `Date` from the sandbox's clock (run the server with uvicorn's own Date header off)."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                stamp = formatdate(self._state.exact_clock.now(), usegmt=True).encode("ascii")
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", stamp)]}
            await send(message)

        await self._app(scope, receive, dated)


def build_app(state: SandboxState) -> Starlette:
    app = Starlette(
        routes=[*oauth.ROUTES, *webhook_api.ROUTES, *writes.ROUTES, *api.ROUTES, *control.ROUTES],  # keyed paths first
        exception_handlers={404: _http_error, 405: _http_error},
        middleware=[Middleware(ExactDate, state=state)],
    )
    app.state.sandbox = state
    return app
