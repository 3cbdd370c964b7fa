"""`exact-sync serve`: the connect flow over HTTP for deployments (Starlette, run by uvicorn).

Public routes (no admin token; see README "Security model of serve"):
GET  /connect/{name}?invite=T -> a page with a "continue" button, if T is a valid invite for `name` (else 403)
POST /connect/{name}?invite=T -> uses the invite up, sets the flow cookie, 303 to Exact's consent page
GET  {path of EXACT_REDIRECT_URI} (default /oauth/callback) -> finishes the flow, shows the outcome
GET  /health, /ready -> liveness and readiness (worker.ops_web)
POST {WEBHOOK_PATH} (default /webhooks/exact) -> Exact Online's webhooks, signed (worker/webhook_web.py)
Any other route is an admin route (worker.web_auth.require_admin), off unless SERVE_ADMIN_TOKEN is set:
GET  /metrics, /dashboard -> Prometheus metrics and the status page (worker.ops_web)
POST /admin/invites {"name": N, "region": R?, "expires": "24h"?} -> 201 {"url": ..., ...}: an invite, from code

The GET shows a button instead of redirecting at once so that link scanners (mail, chat previews) that fetch
the link do not use the invite up. A request without a valid invite costs one Postgres read: no Redis key, no
call to Exact. The consent is bound to the browser that pressed the button: the state's hash and a random
nonce in an HttpOnly, SameSite=Lax cookie scoped to the callback path must both come back to the callback.
Handlers are plain functions: Starlette runs them in its thread pool, as the flow does blocking I/O.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import redis
import sqlalchemy.exc
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.db import session_factory
from syncs.core.errors import ConfigurationError, ExactSyncError
from syncs.core.settings import Settings
from syncs.lifecycle.connect_flow import ConnectFlow
from syncs.lifecycle.connections import validate_name
from syncs.lifecycle.invites import check_invite, consume_invite, create_invite, parse_duration
from worker.app import create_app
from worker.auto_subscribe import request_auto_subscribe
from worker.callback import page
from worker.ops_web import ops_routes
from worker.web_auth import require_admin
from worker.web_proxy import proxy_route
from worker.webhook_dispatch import Dispatcher, redis_for_webhooks
from worker.webhook_web import webhook_route

log = structlog.get_logger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
INVALID_INVITE = (
    "This connect link is not valid: it is unknown, expired or already used, or belongs to another connection. "
    "Ask whoever sent it for a new one (they run `exact-sync connections invite NAME`)."
)

UNAVAILABLE = (
    "The connect service cannot reach its database or Redis right now. Nothing was changed and a connect link "
    "that brought you here still works: try again in a few minutes."
)


def flow_cookie_name(state: str) -> str:
    """One cookie per pending consent, so several consents can be under way in one browser."""
    return f"exact_sync_flow_{hashlib.sha256(state.encode()).hexdigest()[:16]}"


def create_web_app(
    settings: Settings, clock: Clock = SYSTEM_CLOCK, transport: httpx.BaseTransport | None = None
) -> Starlette:
    sessions = session_factory(settings.database_url)
    redis_client: redis.Redis[Any] = redis.Redis.from_url(settings.redis_url)
    flow = ConnectFlow(settings, sessions, redis_client, clock, transport)
    callback_path = urlsplit(settings.exact_redirect_uri).path or "/oauth/callback"
    secure_cookie = urlsplit(settings.exact_redirect_uri).scheme == "https"

    def html_page(title: str, message: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(page(title, message), status_code=status, headers=NO_STORE)

    def invited(request: Request) -> tuple[str, str, str] | None:
        """(name, invite token, region) when the request carries a valid invite for the path's name."""
        name, token = request.path_params["name"], request.query_params.get("invite", "")
        try:
            validate_name(name)
        except ConfigurationError:
            return None
        if not token or len(token) > 256:
            return None
        with sessions() as session:
            region = check_invite(session, flow.cipher, token, name, to_datetime(clock.now()))
        return (name, token, region) if region is not None else None

    def connect_page(request: Request) -> Response:
        found = invited(request)
        if found is None:
            return html_page("Invalid connect link", INVALID_INVITE, 403)
        name, token, region = found
        action = html.escape(f"/connect/{name}?{urlencode({'invite': token})}")
        body = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Connect to Exact Online</title></head><body>"
            f"<h1>Connect {html.escape(name)} to Exact Online</h1>"
            f"<p>You will be sent to Exact Online ({html.escape(region)}) to allow access to your company's data. "
            "This link works once.</p>"
            f"<form method='post' action='{action}'><button type='submit'>Continue to Exact Online</button></form>"
            "</body></html>"
        )
        return HTMLResponse(body, headers=NO_STORE)

    def connect_start(request: Request) -> Response:
        found = invited(request)
        if found is None:
            return html_page("Invalid connect link", INVALID_INVITE, 403)
        name, token, region = found
        nonce = secrets.token_urlsafe(32)
        try:
            flow.check_client(region)  # before the invite is used up: a misconfigured app keeps the invite
            with sessions.begin() as session:
                if consume_invite(session, flow.cipher, token, name, to_datetime(clock.now())) is None:
                    return html_page("Invalid connect link", INVALID_INVITE, 403)
                # Inside the invite's transaction: a state Redis could not store leaves the invite unused.
                url, state = flow.begin(name, region, browser=nonce, check_client=False)
        except ExactSyncError as exc:
            return html_page("Cannot connect", str(exc), 400)
        response = RedirectResponse(url, status_code=303, headers=NO_STORE)
        response.set_cookie(
            flow_cookie_name(state),
            nonce,
            max_age=settings.oauth_state_ttl_seconds,
            path=callback_path,
            secure=secure_cookie,
            httponly=True,
            samesite="lax",
        )
        return response

    def callback(request: Request) -> Response:
        query = request.query_params  # URL-decoded
        state = query.get("state")
        cookie = flow_cookie_name(state) if state else None
        try:
            done = flow.complete(
                state,
                query.get("code"),
                query.get("error"),
                query.get("error_description"),
                browser=request.cookies.get(cookie) if cookie else None,
            )
        except ExactSyncError as exc:
            return html_page("Not connected", str(exc), 400)
        request_auto_subscribe(settings, done.name)
        codes = ", ".join(str(d.code) for d in done.divisions) or "none found yet (the first sync looks again)"
        verb = "reconnected" if done.reconnected else "connected"
        message = f"Connection {done.name} ({done.region}) {verb}. Divisions: {codes}. You can close this window."
        response = html_page("Connected", message)
        if cookie:
            response.delete_cookie(cookie, path=callback_path, secure=secure_cookie, httponly=True, samesite="lax")
        return response

    async def admin_invite(request: Request) -> Response:
        if (refused := require_admin(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return JSONResponse({"error": 'send a JSON object with "name" (and "region", "expires")'}, 400)
        region, expires = body.get("region"), body.get("expires", "24h")
        try:
            if not isinstance(region, str | None) or not isinstance(expires, str):
                raise ConfigurationError('"region" and "expires" are strings')
            made = await run_in_threadpool(
                create_invite, settings, sessions, flow.cipher, body["name"], region, parse_duration(expires), clock
            )
        except ConfigurationError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        result = {
            "url": made.url,
            "name": made.name,
            "region": made.region,
            "expires_at": made.expires_at.isoformat(),
            "reconnect": made.reconnect,
        }
        return JSONResponse(result, 201, headers=NO_STORE)

    routes = [
        *ops_routes(settings, sessions, redis_client, clock),
        Route("/connect/{name}", connect_page, methods=["GET"]),
        Route("/connect/{name}", connect_start, methods=["POST"]),
        Route(callback_path, callback, methods=["GET"]),
        Route("/admin/invites", admin_invite, methods=["POST"]),
        proxy_route(settings),
        webhook_route(settings, sessions, Dispatcher(settings, create_app(settings), redis_for_webhooks(settings))),
    ]

    async def unavailable(request: Request, exc: Exception) -> Response:
        """Postgres or Redis down: a page that says so (503), not a bare 500; only the path is logged (queries
        carry invites, codes and states)."""
        log.warning("web.unavailable", path=request.url.path, error=type(exc).__name__)
        return html_page("Try again later", UNAVAILABLE, 503)

    down = {error: unavailable for error in (redis.RedisError, sqlalchemy.exc.OperationalError)}
    app = Starlette(routes=routes, exception_handlers=down)
    app.state.flow = flow
    app.state.settings = settings  # read by worker.web_auth.require_admin
    return app
