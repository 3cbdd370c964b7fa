"""The admin credential of `exact-sync serve`: a bearer token from SERVE_ADMIN_TOKEN.

Every route beyond /health, the OAuth callback and invite-based /connect calls `require_admin` first:

    def metrics(request: Request) -> Response:
        if (refused := require_admin(request)) is not None:
            return refused
        ...

Without SERVE_ADMIN_TOKEN the admin routes are off (404, as if they did not exist), so a deployment that never
configured a token exposes nothing beyond the public routes. The comparison is constant-time (hmac.compare_digest
on bytes), so response timing does not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from syncs.core.settings import Settings, get_settings

NO_STORE = {"Cache-Control": "no-store"}


def admin_token(settings: Settings) -> bytes | None:
    """The configured token as bytes, or None when admin routes are off (unset or empty)."""
    token = settings.serve_admin_token
    value = token.get_secret_value() if token is not None else ""
    return value.encode() if value else None


def require_admin(request: Request) -> Response | None:
    """None when the request carries `Authorization: Bearer <SERVE_ADMIN_TOKEN>`; otherwise the response to send.

    The settings come from `app.state.settings` (set by `create_web_app`), else from the environment.
    """
    settings = getattr(request.app.state, "settings", None) or get_settings()
    expected = admin_token(settings)
    if expected is None:
        return PlainTextResponse("Not Found", status_code=404, headers=NO_STORE)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return PlainTextResponse(
            "admin token required", status_code=401, headers={**NO_STORE, "WWW-Authenticate": "Bearer"}
        )
    if not hmac.compare_digest(given.strip().encode("latin-1"), expected):  # the header's raw bytes
        return PlainTextResponse(
            "invalid admin token",
            status_code=401,
            headers={**NO_STORE, "WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None
