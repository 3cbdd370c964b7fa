"""`serve`'s operator routes: /health, /ready, and behind the admin credential /metrics and /dashboard.

GET /health    -> 200 while the process answers (liveness: restart it when this fails)
GET /ready     -> 200 when Postgres, Redis and the broker answer and the schema is at the newest migration,
                  else 503 with each problem (readiness: send it no traffic meanwhile)
GET /metrics   -> Prometheus exposition (worker.metrics), admin only
GET /dashboard -> the status page (worker.dashboard), admin only
"""

from __future__ import annotations

from typing import Any

import redis
import structlog
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from syncs.core.clock import Clock
from syncs.core.db import engine_for
from syncs.core.settings import Settings
from worker.app import create_app
from worker.dashboard import CONTENT_SECURITY_POLICY, render_dashboard
from worker.health import broker_reachable, migration_level
from worker.metrics import CONTENT_TYPE, ExactSyncCollector, metrics_renderer
from worker.web_auth import require_admin

log = structlog.get_logger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


def readiness_problems(settings: Settings, redis_client: redis.Redis[Any], celery_app: Celery) -> dict[str, str]:
    """What keeps this deployment from serving, by part (empty when ready)."""
    problems: dict[str, str] = {}
    try:
        level = migration_level(engine_for(settings.database_url), settings.database_url)
        if not level.at_head:
            problems["migrations"] = f"database at {level.current or 'no revision'}, code expects {level.head}"
    except Exception as exc:
        problems["postgres"] = _describe(exc)
    try:
        redis_client.ping()
    except Exception as exc:
        problems["redis"] = _describe(exc)
    try:
        broker_reachable(celery_app)
    except Exception as exc:
        problems["broker"] = _describe(exc)
    return problems


def ops_routes(
    settings: Settings, sessions: sessionmaker[Session], redis_client: redis.Redis[Any], clock: Clock
) -> list[Route]:
    celery_app = create_app(settings)
    render_metrics = metrics_renderer(ExactSyncCollector(settings, sessions, redis_client, celery_app, clock))

    def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    def ready(request: Request) -> Response:  # public, like /health: probes carry no credential
        problems = readiness_problems(settings, redis_client, celery_app)
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503, headers=NO_STORE)
        return JSONResponse({"status": "ready"}, headers=NO_STORE)

    def metrics(request: Request) -> Response:
        if (refused := require_admin(request)) is not None:
            return refused
        return Response(render_metrics(), media_type=CONTENT_TYPE, headers=NO_STORE)

    def dashboard(request: Request) -> Response:
        if (refused := require_admin(request, browser_page=True)) is not None:
            return refused
        page = render_dashboard(settings, sessions, redis_client, clock)
        return HTMLResponse(page, headers={**NO_STORE, "Content-Security-Policy": CONTENT_SECURITY_POLICY})

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/dashboard", dashboard, methods=["GET"]),
    ]


def _describe(exc: Exception) -> str:
    """The error's type only: /ready is public; the details go to the log."""
    log.warning("ready.problem", error=f"{type(exc).__name__}: {exc}")
    return type(exc).__name__
