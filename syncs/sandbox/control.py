"""The sandbox's own control API under /sandbox/ (no auth): other processes drive data, tokens, limits."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncs.sandbox.responses import json_response
from syncs.sandbox.state import SandboxState

Action = Callable[[SandboxState, Request, dict[str, Any]], Any]


def action(fn: Action, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a state call: JSON body in, JSON out; KeyError -> 404, ValueError/TypeError -> 400."""

    async def endpoint(request: Request) -> Response:
        body: dict[str, Any] = {}
        if request.method in ("POST", "PATCH") and await request.body():
            parsed = await request.json()
            if not isinstance(parsed, dict):
                return json_response({"error": "a JSON object is required"}, 400)
            body = parsed
        try:
            result = fn(request.app.state.sandbox, request, body)
        except KeyError as missing:
            return json_response({"error": f"not found: {missing.args[0] if missing.args else ''}"}, 404)
        except (ValueError, TypeError) as wrong:
            return json_response({"error": str(wrong)}, 400)
        return json_response(result, status)

    return endpoint


def _div(request: Request) -> int:
    return int(request.path_params["division"])


def _id(request: Request) -> str:
    return str(request.path_params["id"])


def _name(request: Request) -> str:
    return str(request.path_params["name"])


def _find(records: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    for record in records:
        if record[key] == value:
            return record
    raise KeyError(value)


def _create_invoice(s: SandboxState, r: Request, b: dict[str, Any]) -> Any:
    lines = b.pop("Lines", [])
    if not isinstance(lines, list):
        raise ValueError("Lines must be a list")
    return s.create_invoice(_div(r), b, lines)


def _config(s: SandboxState, r: Request, b: dict[str, Any]) -> Any:
    return dataclasses.asdict(s.configure(**b) if b else s.config)


def _divisions(s: SandboxState, r: Request, b: dict[str, Any]) -> Any:
    if r.method == "POST":
        s.add_division(int(b["Code"]), str(b.get("Description", f"Division {b['Code']}")))
    return [{"Code": code, "Description": d.description} for code, d in s.divisions.items()]


def _generate(s: SandboxState, r: Request, b: dict[str, Any]) -> Any:
    return s.generate(
        int(b.get("division", s.current_division)),
        int(b.get("accounts", 20000)),
        int(b.get("invoices", 25000)),
        int(b.get("lines_per_invoice", 4)),
    )


D = "/sandbox/divisions/{division:int}"
E = f"{D}/entities/{{name}}"
ROUTES = [
    Route("/sandbox/tokens", action(lambda s, r, b: s.issue_tokens()), methods=["POST"]),
    Route(
        "/sandbox/codes",
        action(lambda s, r, b: {"code": s.issue_code(b.get("redirect_uri"))}),
        methods=["POST"],
    ),
    Route("/sandbox/revoke", action(lambda s, r, b: {"revoked": s.revoke_refresh_tokens()}), methods=["POST"]),
    Route("/sandbox/counters", action(lambda s, r, b: s.counters.as_dict()), methods=["GET"]),
    Route("/sandbox/counters/reset", action(lambda s, r, b: s.reset_counters()), methods=["POST"]),
    Route("/sandbox/config", action(_config), methods=["GET", "POST"]),
    Route("/sandbox/generate", action(_generate), methods=["POST"]),
    Route("/sandbox/divisions", action(_divisions), methods=["GET", "POST"]),
    Route(f"{D}/accounts", action(lambda s, r, b: s.accounts(_div(r))), methods=["GET"]),
    Route(f"{D}/accounts", action(lambda s, r, b: s.create_account(_div(r), **b), 201), methods=["POST"]),
    Route(
        f"{D}/accounts/{{id}}",
        action(lambda s, r, b: _find(s.accounts(_div(r)), "ID", _id(r))),
        methods=["GET"],
    ),
    Route(
        f"{D}/accounts/{{id}}",
        action(lambda s, r, b: s.update_account(_div(r), _id(r), **b)),
        methods=["PATCH"],
    ),
    Route(f"{D}/accounts/{{id}}", action(lambda s, r, b: s.delete_account(_div(r), _id(r))), methods=["DELETE"]),
    Route(f"{D}/invoices", action(lambda s, r, b: s.invoices(_div(r))), methods=["GET"]),
    Route(f"{D}/invoices", action(_create_invoice, 201), methods=["POST"]),
    Route(f"{D}/invoices/{{id}}", action(lambda s, r, b: s.invoice(_div(r), _id(r))), methods=["GET"]),
    Route(
        f"{D}/invoices/{{id}}",
        action(lambda s, r, b: s.update_invoice(_div(r), _id(r), b)),
        methods=["PATCH"],
    ),
    Route(f"{D}/invoices/{{id}}", action(lambda s, r, b: s.delete_invoice(_div(r), _id(r))), methods=["DELETE"]),
    Route(
        f"{D}/invoices/{{id}}/lines",
        action(lambda s, r, b: s.add_invoice_line(_div(r), _id(r), **b), 201),
        methods=["POST"],
    ),
    Route(f"{D}/invoice-lines", action(lambda s, r, b: s.invoice_lines(_div(r))), methods=["GET"]),
    Route(
        f"{D}/invoice-lines/{{id}}",
        action(lambda s, r, b: s.update_invoice_line(_div(r), _id(r), **b)),
        methods=["PATCH"],
    ),
    Route(
        f"{D}/invoice-lines/{{id}}",
        action(lambda s, r, b: s.delete_invoice_line(_div(r), _id(r))),
        methods=["DELETE"],
    ),
    Route(f"{D}/deleted", action(lambda s, r, b: s.deleted(_div(r))), methods=["GET"]),
    # Every other declared entity: /sandbox/divisions/{division}/entities/{name}[/{id}]
    Route(E, action(lambda s, r, b: s.records(_div(r), _name(r))), methods=["GET"]),
    Route(E, action(lambda s, r, b: s.create_record(_div(r), _name(r), **b), 201), methods=["POST"]),
    Route(f"{E}/{{id}}", action(lambda s, r, b: s.update_record(_div(r), _name(r), _id(r), **b)), methods=["PATCH"]),
    Route(f"{E}/{{id}}", action(lambda s, r, b: s.delete_record(_div(r), _name(r), _id(r))), methods=["DELETE"]),
]
