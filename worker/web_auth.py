"""The admin credential of `exact-sync serve`: a bearer token from SERVE_ADMIN_TOKEN.

Every route beyond /health, the OAuth callback and invite-based /connect calls `require_admin` first:

    def metrics(request: Request) -> Response:
        if (refused := require_admin(request)) is not None:
            return refused
        ...

Without SERVE_ADMIN_TOKEN the admin routes are off (404, as if they did not exist), so a deployment that never
configured a token exposes nothing beyond the public routes. The comparison is constant-time (hmac.compare_digest
on bytes), so response timing does not reveal how much of a guess was right.

A browser cannot send a bearer header, so a page meant for people (`/dashboard`) also takes HTTP Basic with the
token as the password (any user name): its 401 asks the browser to prompt. Only read-only GET pages do: a
browser replays Basic credentials on cross-site requests, which is harmless for a page another site cannot read
(same-origin policy) but would make state-changing routes forgeable, so those keep to the bearer header.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from syncs.core.settings import Settings, configured, get_settings

NO_STORE = {"Cache-Control": "no-store"}


def admin_token(settings: Settings) -> bytes | None:
    """The configured token as bytes, or None when admin routes are off (unset or empty)."""
    value = configured(settings.serve_admin_token)
    return value.encode() if value is not None else None


BASIC_CHALLENGE = 'Basic realm="exact-sync admin", charset="UTF-8"'


def require_admin(request: Request, *, browser_page: bool = False) -> Response | None:
    """None when the request carries `Authorization: Bearer <SERVE_ADMIN_TOKEN>` (or, for a read-only
    `browser_page` fetched with GET, HTTP Basic with the token as password); otherwise the response to send.

    The settings come from `app.state.settings` (set by `create_web_app`), else from the environment.
    """
    settings = getattr(request.app.state, "settings", None) or get_settings()
    expected = admin_token(settings)
    if expected is None:
        return PlainTextResponse("Not Found", status_code=404, headers=NO_STORE)
    basic_allowed = browser_page and request.method in ("GET", "HEAD")
    challenge = BASIC_CHALLENGE if basic_allowed else "Bearer"
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    presented = _presented_token(scheme.lower(), given.strip(), basic_allowed)
    if presented is None:
        return PlainTextResponse(
            "admin token required", status_code=401, headers={**NO_STORE, "WWW-Authenticate": challenge}
        )
    if not hmac.compare_digest(presented, expected):
        invalid = challenge if basic_allowed else 'Bearer error="invalid_token"'
        headers = {**NO_STORE, "WWW-Authenticate": invalid}
        return PlainTextResponse("invalid admin token", status_code=401, headers=headers)
    return None


def _presented_token(scheme: str, value: str, basic_allowed: bool) -> bytes | None:
    """The token the header presents, as raw bytes; None when it presents none the route accepts."""
    if not value:
        return None
    if scheme == "bearer":
        return value.encode("latin-1")  # the header's raw bytes
    if scheme == "basic" and basic_allowed:
        try:
            _user, colon, password = base64.b64decode(value, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return None
        return password if colon else None
    return None
