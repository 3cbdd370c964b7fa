"""`exact-sync serve`: the connect flow over HTTP for deployments (Starlette, run by uvicorn).

GET /connect/{name}?region=R  -> 302 to Exact's consent page (region defaults to an existing connection's)
GET {path of EXACT_REDIRECT_URI} (default /oauth/callback) -> finishes the flow, shows the outcome
GET /health -> 200 {"status": "ok"} when Postgres and Redis answer, else 503

No login of its own: bind it to localhost (the default) or put it behind an authenticating proxy, since whoever
reaches /connect can point a connection at the Exact account they consent with.
Handlers are plain functions: Starlette runs them in its thread pool, as the flow does blocking I/O.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
import structlog
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.db import session_factory
from syncs.core.errors import ExactSyncError
from syncs.core.settings import Settings
from syncs.lifecycle.connect_flow import ConnectFlow
from worker.callback import page
from worker.web_proxy import proxy_route

log = structlog.get_logger(__name__)


def create_web_app(
    settings: Settings, clock: Clock = SYSTEM_CLOCK, transport: httpx.BaseTransport | None = None
) -> Starlette:
    sessions = session_factory(settings.database_url)
    redis_client: redis.Redis[Any] = redis.Redis.from_url(settings.redis_url)
    flow = ConnectFlow(settings, sessions, redis_client, clock, transport)

    def health(request: Request) -> Response:
        problems = {}
        try:
            with sessions() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            problems["postgres"] = type(exc).__name__
        try:
            redis_client.ping()
        except Exception as exc:
            problems["redis"] = type(exc).__name__
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ok"})

    def connect(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            url, _ = flow.begin(name, request.query_params.get("region"))
        except ExactSyncError as exc:
            return HTMLResponse(page("Cannot connect", str(exc)), status_code=400)
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})

    def callback(request: Request) -> Response:
        query = request.query_params  # URL-decoded
        try:
            done = flow.complete(
                query.get("state"), query.get("code"), query.get("error"), query.get("error_description")
            )
        except ExactSyncError as exc:
            return HTMLResponse(page("Not connected", str(exc)), status_code=400)
        codes = ", ".join(str(d.code) for d in done.divisions) or "none found yet (the first sync looks again)"
        verb = "reconnected" if done.reconnected else "connected"
        message = f"Connection {done.name} ({done.region}) {verb}. Divisions: {codes}. You can close this window."
        return HTMLResponse(page("Connected", message))

    callback_path = urlsplit(settings.exact_redirect_uri).path or "/oauth/callback"
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/connect/{name}", connect, methods=["GET"]),
        Route(callback_path, callback, methods=["GET"]),
        proxy_route(settings),
    ]
    app = Starlette(routes=routes)
    app.state.flow = flow
    app.state.settings = settings  # read by worker.web_auth.require_admin
    return app
