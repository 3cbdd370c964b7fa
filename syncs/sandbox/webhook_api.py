"""The sandbox's HTTP face of webhooks: Exact's `webhooks/WebhookSubscriptions` and control endpoints."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncs.sandbox.api import guarded
from syncs.sandbox.control import action
from syncs.sandbox.responses import ApiError
from syncs.sandbox.state import SandboxState

SUBSCRIPTION_TYPE = "Exact.Web.Api.Models.Webhooks.WebhookSubscription"
_GUID = re.compile(r"^\(guid'([0-9a-fA-F-]{36})'\)$")


def _record(request: Request, division: int, subscription: dict[str, Any]) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    uri = f"{base}/api/v1/{division}/webhooks/WebhookSubscriptions(guid'{subscription['ID']}')"
    return {"__metadata": {"uri": uri, "type": SUBSCRIPTION_TYPE}, **subscription}


async def subscriptions(request: Request) -> Response:
    division = int(request.path_params["division"])
    body: dict[str, Any] = {}
    if request.method == "POST":
        raw = await request.body()
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            parsed = {}
        body = parsed

    def handle(request: Request, state: SandboxState, division: int) -> dict[str, Any]:
        if request.method == "GET":
            return {"d": {"results": [_record(request, division, s) for s in state.webhooks.listed(division)]}}
        url, topic = body.get("CallbackURL"), body.get("Topic")
        if not isinstance(url, str) or not isinstance(topic, str):
            raise ApiError(400, "CallbackURL and Topic are required")
        try:
            created = state.subscribe_webhook(division, url, topic)
        except ValueError as refused:
            raise ApiError(400, str(refused)) from None
        return {"d": _record(request, division, created)}

    return await guarded(request, division, handle)


async def subscription(request: Request) -> Response:
    division = int(request.path_params["division"])
    match = _GUID.match(request.path_params["key"])

    def handle(request: Request, state: SandboxState, division: int) -> dict[str, Any]:
        if match is None:
            raise ApiError(400, "Expected (guid'...')")
        try:
            state.webhooks.unsubscribe(division, match.group(1))
        except KeyError:
            raise ApiError(404, "Resource not found") from None
        return {}

    return await guarded(request, division, handle)


def _burst(state: SandboxState, request: Request, body: dict[str, Any]) -> Any:
    """Send `count` events of `topic` at once (random keys unless `key` is given): a burst of webhooks."""
    division = int(body.get("division", state.current_division))
    topic, count = str(body.get("topic", "SalesInvoices")), int(body.get("count", 500))
    action_name = str(body.get("action", "Update"))
    keys = [str(body.get("key") or uuid.uuid4()) for _ in range(count)]
    return {"sent": sum(state.publish_webhook(division, topic, action_name, key) for key in keys)}


def _overview(state: SandboxState, request: Request, body: dict[str, Any]) -> Any:
    hub = state.webhooks
    return {
        "subscriptions": [asdict(s) for s in hub.subscriptions.values()],
        "attempts": [asdict(a) for a in hub.attempts],
    }


W = "/api/v1/{division:int}/webhooks/WebhookSubscriptions"
ROUTES = [
    Route(W, subscriptions, methods=["GET", "POST"]),
    Route(W + "{key}", subscription, methods=["DELETE"]),
    Route("/sandbox/webhooks", action(_overview), methods=["GET"]),
    Route("/sandbox/webhooks/burst", action(_burst), methods=["POST"]),
]
