"""Exact's OAuth: GET /api/oauth2/auth (the test user consents at once) and POST /api/oauth2/token."""

from __future__ import annotations

import base64
import binascii
import html
from urllib.parse import parse_qsl, quote, unquote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from syncs.sandbox.responses import json_response, oauth_error
from syncs.sandbox.state import SandboxState
from syncs.sandbox.tokens import TokenError


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote(client_id), unquote(secret)) if sep else None


def _redirect(redirect_uri: str, params: dict[str, str]) -> Response:
    """302 to redirect_uri with params percent-encoded ('!', '+', '/' and '=' in codes included)."""
    separator = "&" if "?" in redirect_uri else "?"
    location = f"{redirect_uri}{separator}{urlencode(params, quote_via=quote)}"
    return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})


async def authorize(request: Request) -> Response:
    """Consent for the configured test user without a login page (force_login is accepted and ignored)."""
    state: SandboxState = request.app.state.sandbox
    query = request.query_params
    client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
    echo = {"state": query["state"]} if "state" in query else {}
    try:
        code = state.authorize(client_id, redirect_uri, query.get("response_type", ""))
    except LookupError:
        # What users see when the app is registered in another Exact region (picqer #617).
        page = (
            "<!DOCTYPE html><html><head><title>Exact Online</title></head><body><h1>Bad Request</h1>"
            f"<p>Client with identifier '{html.escape(client_id)}' not found</p></body></html>"
        )
        return HTMLResponse(page, status_code=400)
    except ValueError as wrong:
        return PlainTextResponse(f"Bad Request: {wrong}", status_code=400)
    if code is None:
        denied = {"error": "access_denied", "error_description": "The user denied access to the app."}
        return _redirect(redirect_uri, {**denied, **echo})
    return _redirect(redirect_uri, {"code": code, **echo})


async def token(request: Request) -> Response:
    state: SandboxState = request.app.state.sandbox
    # Parsed by hand: starlette's request.form() needs python-multipart, which is not a dependency.
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    basic = _basic_credentials(request.headers.get("authorization", ""))
    client_id, secret = basic if basic else (form.get("client_id"), form.get("client_secret"))
    try:
        pair = state.token_request(form, client_id, secret)
    except TokenError as refused:
        return oauth_error(refused.status, refused.error, refused.description)
    return json_response(pair, headers={"Cache-Control": "no-store"})


ROUTES = [
    Route("/api/oauth2/auth", authorize, methods=["GET"]),
    Route("/api/oauth2/token", token, methods=["POST"]),
]
