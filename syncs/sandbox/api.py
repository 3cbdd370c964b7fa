"""Exact's REST API: current/Me, the sync endpoints and system/Divisions, behind token and budget checks.

Every call passes `guarded`: latency -> bearer token -> error-limit block -> division access -> burst 429
-> injected 500 -> rate budget -> handler. 400/401/403/404 count toward Exact's error limit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncs.entities.declaration import Strategy
from syncs.sandbox.catalog import key_field
from syncs.sandbox.dates import AMSTERDAM
from syncs.sandbox.errorlimit import endpoint_of
from syncs.sandbox.fields import DIVISION_FIELDS
from syncs.sandbox.odata import next_link, parse_select, parse_sync_query
from syncs.sandbox.render import SYNC_ENTITIES
from syncs.sandbox.responses import Answer, ApiError, exact_error, json_response
from syncs.sandbox.seed import division_record
from syncs.sandbox.state import SandboxState

Handler = Callable[[Request, SandboxState, int], Any]
ME_TYPE = "Exact.Web.Api.Models.System.Me"
DIVISION_TYPE = "Exact.Web.Api.Models.System.Division"
COUNTED_ERRORS = frozenset({400, 401, 403, 404})


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def guarded(request: Request, division: int | None, handler: Handler) -> Response:
    state = _state(request)
    if state.config.latency > 0:
        await asyncio.sleep(state.config.latency)
    division = state.current_division if division is None else division
    endpoint = endpoint_of(request.url.path)
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    status = state.access_status(token.strip()) if scheme.lower() == "bearer" and token.strip() else "unknown"
    if status != "ok":
        # A request without credentials has no key, user or company Exact could count it against (`doctor`
        # probes this way); one with a token, even a stale or unknown one, counts toward the error limit.
        state.record_client_error(division, endpoint if auth else None)
        if status == "expired":
            challenge = 'Bearer error="invalid_token", error_description="access token expired"'
            return exact_error(401, "Unauthorized", {"WWW-Authenticate": challenge})
        return exact_error(401, "Unauthorized", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    until = state.blocked_until(division, endpoint)
    if until is not None:
        return exact_error(403, _blocked_message(state, until))
    if not state.division_access(division):
        state.record_client_error(division, endpoint)
        reason = state.config.restricted_reason
        return exact_error(403, "Forbidden", {"Reason": reason} if reason else {})
    burst = state.burst(division)
    if burst is not None:
        return exact_error(429, "Too many requests", burst)
    if state.inject_fault(division):
        return exact_error(500, "Internal server error (injected by the sandbox)")
    verdict = state.spend(division)
    if not verdict.allowed:
        return exact_error(429, "Too many requests", verdict.headers)
    try:
        body = handler(request, state, division)
    except ApiError as error:
        state.record_client_error(division, endpoint if error.status in COUNTED_ERRORS else None)
        return exact_error(error.status, error.message, {**verdict.headers, **error.headers})
    if isinstance(body, Answer):
        if body.body is None:
            return Response(status_code=body.status, headers=verdict.headers)
        return json_response(body.body, body.status, verdict.headers)
    return json_response(body, 200, verdict.headers)


def _blocked_message(state: SandboxState, until: float) -> str:
    lifted = datetime.fromtimestamp(until, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"Your API key is blocked for this endpoint: more than {state.config.error_limit_per_hour} errors "
        f"(400, 401, 403, 404) within an hour. The block is lifted at {lifted}."
    )


def _endpoint(handler: Handler, with_division: bool = True) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        division = int(request.path_params["division"]) if with_division else None
        return await guarded(request, division, handler)

    return endpoint


def me(request: Request, state: SandboxState, division: int) -> dict[str, Any]:
    now = datetime.fromtimestamp(state.exact_clock.now(), tz=AMSTERDAM)
    offset = state.config.server_utc_offset
    if offset is None:
        delta = now.utcoffset()
        offset = int(delta.total_seconds()) if delta is not None else 0
    record: dict[str, Any] = {
        **state.me_template,
        "CurrentDivision": division,
        "AccountingDivision": division,
        "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%S"),
        "ServerUtcOffset": offset,
    }
    select = parse_select(request.query_params, frozenset(record), ME_TYPE) or list(record)
    row: dict[str, Any] = {
        "__metadata": {"uri": f"{_base(request)}/api/v1/current/Me(guid'{state.user_id}')", "type": ME_TYPE},
    }
    row.update({name: record[name] for name in select})
    return {"d": {"results": [row]}}


def divisions(request: Request, state: SandboxState, division: int) -> dict[str, Any]:
    """system/Divisions and system/AllDivisions: every division of the login; hrm/Divisions: accessible."""
    current = state.current_division
    accessible_only = request.url.path.lower().endswith("/hrm/divisions")
    records = []
    only = _CODE_EQ.fullmatch(request.query_params.get("$filter", "").strip())
    for code, data in list(state.divisions.items()):
        if accessible_only and not state.division_access(code):
            continue
        if only is not None and code != int(only.group(1)):
            continue
        record = division_record(code, data.description)
        if data.move_date is not None:
            record["DivisionMoveDate"] = data.move_date
        record["Current"] = code == current
        records.append(record)
    fields = frozenset(records[0]) | DIVISION_FIELDS if records else DIVISION_FIELDS
    select = parse_select(request.query_params, fields, DIVISION_TYPE)
    rows = []
    for record in records:
        row: dict[str, Any] = {
            "__metadata": {
                "uri": f"{_base(request)}/api/v1/{division}/system/Divisions({record['Code']})",
                "type": DIVISION_TYPE,
            }
        }
        row.update({name: record.get(name) for name in (select or list(record))})
        rows.append(row)
    return {"d": {"results": rows}}


def sync(request: Request, state: SandboxState, division: int) -> dict[str, Any]:
    path = f"{_base(request)}{request.url.path}"
    entity = SYNC_ENTITIES.get(request.path_params["entity"].lower())
    if entity is None:
        store = state.catalog_store(division, f"sync/{request.path_params['entity']}")
        if store is None or store.entity.strategy is not Strategy.SYNC:
            raise ApiError(404, "Resource not found")
        allowed = frozenset(store.entity.select_fields)
        query = parse_sync_query(request.query_params, allowed, store.entity.endpoint)
        limit = min(query.top, state.config.page_size) if query.top is not None else None
        page = state.catalog_sync_page(
            division, store, query.select, query.after_timestamp, query.after_seq, path, limit
        )
    else:
        query = parse_sync_query(request.query_params, entity.fields, entity.type_name)
        limit = min(query.top, state.config.page_size) if query.top is not None else None
        page = state.sync_page(division, entity, query.select, query.after_timestamp, query.after_seq, path, limit)
    body: dict[str, Any] = {"results": page.rows}
    remaining = None if query.top is None else query.top - len(page.rows)
    if page.next_seq is not None and (remaining is None or remaining > 0):
        body["__next"] = next_link(path, request.query_params, page.next_seq, remaining)
    return {"d": body}


def standard(request: Request, state: SandboxState, division: int) -> dict[str, Any]:
    """A generated entity's standard endpoint (Modified-filter and snapshot strategies): 60 rows a page."""
    endpoint = f"{request.path_params['service']}/{request.path_params['entity']}"
    synced = SYNC_ENTITY_STANDARD.get(endpoint.lower())
    store = state.catalog_store(division, synced or endpoint)
    if store is None or (store.entity.strategy is Strategy.SYNC and synced is None):
        raise ApiError(404, "Resource not found")
    params = request.query_params
    type_name = f"Exact.Web.Api.Models.{endpoint.replace('/', '.')}"
    select = parse_select(params, frozenset(store.entity.select_fields), type_name) or list(store.entity.select_fields)
    filtered = params.get("$filter", "").strip()
    match = _MODIFIED_GE.fullmatch(filtered)
    if filtered and match is None:
        raise ApiError(400, f"The sandbox serves {endpoint} with `Modified ge datetime'...'` or no $filter.")
    since = datetime.fromisoformat(match.group(1)) if match else None
    skip = int(params.get("$skiptoken", "0").rstrip("L") or 0)
    rows, next_skip = state.standard_page(store, select, since, skip)
    path = f"{_base(request)}{request.url.path}"
    key = key_field(store.entity)
    results = [{"__metadata": {"uri": f"{path}(guid'{row.get(key)}')", "type": type_name}, **row} for row in rows]
    body: dict[str, Any] = {"results": results}
    if next_skip is not None:
        body["__next"] = next_link(path, params, next_skip, None)
    return {"d": body}


# Standard endpoints of entities synced through sync/...: served from the same rows (the reference-data lists).
SYNC_ENTITY_STANDARD = {"financial/glaccounts": "sync/Financial/GLAccounts"}
_CODE_EQ = re.compile(r"Code eq (\d+)")
_MODIFIED_GE = re.compile(r"Modified ge datetime'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)'")

ROUTES = [
    Route("/api/v1/current/Me", _endpoint(me, with_division=False), methods=["GET"]),
    Route("/api/v1/{division:int}/system/Divisions", _endpoint(divisions), methods=["GET"]),
    Route("/api/v1/{division:int}/system/AllDivisions", _endpoint(divisions), methods=["GET"]),
    Route("/api/v1/{division:int}/hrm/Divisions", _endpoint(divisions), methods=["GET"]),
    Route("/api/v1/{division:int}/sync/{entity:path}", _endpoint(sync), methods=["GET"]),
    Route("/api/v1/{division:int}/{service}/{entity}", _endpoint(standard), methods=["GET"]),
]
