"""`POST {WEBHOOK_PATH}` (default /webhooks/exact) on `serve`: Exact Online's webhook deliveries.

- An empty POST is Exact's validation request after a subscription is made: 200.
- Anything else must be a delivery signed with EXACT_WEBHOOK_SECRET (syncs/webhooks/signature.py): otherwise
  401 and nothing is recorded. The body is never logged (it is the customer's data and an attacker's input).
- A verified event is recorded once (a replay is a 200 no-op), then handed to the broker as a debounced sync
  of its topic's entities in its division: the request never syncs. Unknown division or topic: 200, logged.
- Postgres down: 503, so Exact retries. Redis or the broker down: 200 (the event is recorded; beat's sweeper
  sends it when the broker is back).
Without EXACT_WEBHOOK_SECRET the route answers 404: receiving is off.
"""

from __future__ import annotations

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncs.core.settings import Settings, configured
from syncs.webhooks.events import record
from syncs.webhooks.signature import SignatureError, verify
from worker.webhook_dispatch import Dispatcher

log = structlog.get_logger(__name__)


def webhook_route(settings: Settings, sessions: sessionmaker[Session], dispatcher: Dispatcher) -> Route:
    secret = configured(settings.exact_webhook_secret)

    def handle(body: bytes, client: str) -> Response:
        if secret is None:
            return JSONResponse({"error": "webhooks are not configured"}, status_code=404)
        if not body.strip():
            log.info("webhook.validation_request", client=client)
            return JSONResponse({"status": "ok"})
        try:
            delivery = verify(body, secret)
        except SignatureError as exc:
            log.warning("webhook.refused", reason=str(exc), bytes=len(body), client=client)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            with sessions.begin() as session:
                recorded = record(session, delivery)
        except SQLAlchemyError as exc:
            log.error("webhook.not_recorded", error=type(exc).__name__)
            return JSONResponse({"error": "try again later"}, status_code=503)
        content = delivery.content
        where = {"topic": content.get("Topic"), "division": content.get("Division"), "action": content.get("Action")}
        if recorded.event_id is None:
            log.info("webhook.duplicate", **where)
        elif not recorded.targets:
            log.info("webhook.ignored", event_id=recorded.event_id, reason=recorded.reason, **where)
        else:
            queued = dispatcher.dispatch(sessions, recorded.targets)
            log.info("webhook.received", event_id=recorded.event_id, queued=queued, **where)
        return JSONResponse({"status": "ok"})

    async def receive(request: Request) -> Response:
        body = await request.body()
        client = request.client.host if request.client else "?"
        return await run_in_threadpool(handle, body, client)

    return Route(settings.webhook_path, receive, methods=["POST"])
