"""`serve`'s proxy: `/proxy/{connection}/{path}` behind the admin credential, any of GET/POST/PUT/DELETE.

The path is relative to `/api/v1/{division}/` as for `exact-sync proxy`; the query string goes to Exact as it
came. Header `X-Exact-Division` picks the division (default: the login's current one); `X-Exact-All-Pages: true`
follows `d.__next` for a GET. Exact's answer comes back with its status; a refusal by Exact comes back with
Exact's status and body; a refusal of ours (budget, foreign URL, inactive connection) as `{"error": ...}`.
"""

from __future__ import annotations

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncs.core.errors import (
    ConfigurationError,
    ErrorBudgetExhaustedError,
    ExactRequestError,
    ExactSyncError,
    ForeignHostError,
    RateLimitedError,
    RetriableError,
)
from syncs.core.settings import Settings
from syncs.lifecycle.clients import proxy
from worker.web_auth import require_admin


def _local_error(exc: ExactSyncError) -> Response:
    if isinstance(exc, ExactRequestError):
        return Response(exc.body or b"{}", status_code=exc.status_code, media_type="application/json")
    status = 502
    headers: dict[str, str] = {}
    if isinstance(exc, ConfigurationError | ForeignHostError):
        status = 400
    elif isinstance(exc, RateLimitedError | ErrorBudgetExhaustedError):
        status = 429
        headers["Retry-After-Epoch"] = str(int(exc.retry_at))
    elif isinstance(exc, RetriableError):
        status = 503
    return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=status, headers=headers)


def proxy_route(settings: Settings) -> Route:
    async def endpoint(request: Request) -> Response:
        if (refused := require_admin(request)) is not None:
            return refused
        raw = await request.body()
        try:
            data = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            return JSONResponse({"error": "the request body is not JSON"}, status_code=400)
        division = request.headers.get("x-exact-division")
        if division is not None and not division.isdigit():
            return JSONResponse({"error": "X-Exact-Division must be a division code"}, status_code=400)
        all_pages = request.headers.get("x-exact-all-pages", "").lower() in ("1", "true", "yes")
        path = request.path_params["path"]
        if request.url.query:
            path = f"{path}?{request.url.query}"
        try:
            result = await run_in_threadpool(
                proxy,
                settings,
                request.path_params["connection"],
                request.method,
                path,
                division=int(division) if division else None,
                data=data,
                all_pages=all_pages,
            )
        except ExactSyncError as exc:
            return _local_error(exc)
        if result.body is None:
            return Response(status_code=result.status)
        return Response(orjson.dumps(result.body), status_code=result.status, media_type="application/json")

    return Route("/proxy/{connection}/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE"])
