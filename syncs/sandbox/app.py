"""The Starlette application: Exact's OAuth and REST routes, the control API, Exact-shaped 404/405."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from syncs.sandbox import api, control, oauth, writes
from syncs.sandbox.responses import exact_error
from syncs.sandbox.state import SandboxState


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "Resource not found", 405: "Method not allowed"}.get(status, "Error")
    return exact_error(status, message)


def build_app(state: SandboxState) -> Starlette:
    app = Starlette(
        routes=[*oauth.ROUTES, *writes.ROUTES, *api.ROUTES, *control.ROUTES],  # writes first: keyed paths
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.sandbox = state
    return app
