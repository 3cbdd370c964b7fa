"""Exact's webhooks in the sandbox: subscriptions, the validation POST, and signed deliveries of changes.

`webhooks/WebhookSubscriptions` (GET, POST {CallbackURL, Topic}; DELETE by `(guid'...')`) behaves like Exact's:
one subscription per app, division, topic and callback (a second POST of the same pair is refused), the
callback must be HTTPS (the sandbox also accepts plain HTTP on loopback hosts, for tests), and shortly after a
subscription is made the callback gets an empty POST that it must answer with 200. Every change to the
division's data then POSTs `{"Content": {...}, "HashCode": "..."}` to each subscription of its topic, signed
like Exact's (uppercase hex HMAC-SHA256 of the raw Content bytes with the app's webhook secret).

Faults for tests (SandboxConfig): `webhook_bad_signature` signs with a wrong secret, `webhook_duplicates`
sends each delivery that many extra times; `burst` (control API) sends N events of a topic at once.
Deliveries leave from one background thread, in order; each attempt is logged (`deliveries`).
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from syncs.webhooks.signature import sign
from syncs.webhooks.topics import KNOWN_TOPICS

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TOPIC_ENDPOINTS = {"Accounts": "crm/Accounts", "SalesInvoices": "salesinvoice/SalesInvoices"}


@dataclass(frozen=True)
class Subscription:
    ID: str
    CallbackURL: str
    Topic: str
    Division: int
    ClientID: str
    Created: str


@dataclass(frozen=True)
class Outgoing:
    url: str
    body: bytes
    topic: str | None  # None: the validation POST
    key: str | None


@dataclass(frozen=True)
class Attempt:
    url: str
    topic: str | None  # None: the validation POST
    key: str | None
    status: int | None  # None: the callback could not be reached
    error: str | None = None


class WebhookHub:
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.subscriptions: dict[str, Subscription] = {}
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._outbox: queue.Queue[Outgoing | threading.Event] = queue.Queue()
        self._thread: threading.Thread | None = None

    # subscriptions -----------------------------------------------------------------------------------------
    def subscribe(self, division: int, callback_url: str, topic: str, now: float) -> Subscription:
        """ValueError (Exact answers 400) for a bad callback, an unknown topic or an existing subscription."""
        parts = urlsplit(callback_url)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise ValueError("CallbackURL must be an HTTPS URL")
        if topic not in KNOWN_TOPICS:
            raise ValueError(f"Topic {topic!r} is not a known webhook topic")
        with self._lock:
            for found in self.subscriptions.values():
                if (found.Division, found.Topic, found.CallbackURL) == (division, topic, callback_url):
                    raise ValueError("A webhook subscription for this topic and callback URL already exists")
            created = datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
            subscription = Subscription(str(uuid.uuid4()), callback_url, topic, division, self.client_id, created)
            self.subscriptions[subscription.ID] = subscription
        self._send(callback_url, b"", None, None)  # Exact's validation request
        return subscription

    def listed(self, division: int) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(s) for s in self.subscriptions.values() if s.Division == division]

    def unsubscribe(self, division: int, subscription_id: str) -> None:
        with self._lock:
            found = self.subscriptions.get(subscription_id.lower())
            if found is None or found.Division != division:
                raise KeyError(subscription_id)
            del self.subscriptions[found.ID]

    # deliveries --------------------------------------------------------------------------------------------
    def publish(
        self, division: int, topic: str, action: str, key: str, now: float, secret: str, duplicates: int = 0
    ) -> int:
        """Deliver one event to every subscription of (division, topic); returns how many POSTs were queued."""
        with self._lock:
            urls = [s.CallbackURL for s in self.subscriptions.values() if (s.Division, s.Topic) == (division, topic)]
        content = {
            "Topic": topic,
            "ClientId": self.client_id,
            "Division": division,
            "Action": action,
            "Key": key,
            "ExactOnlineEndpoint": f"/api/v1/{division}/{TOPIC_ENDPOINTS.get(topic, topic)}(guid'{key}')",
            "EventCreatedOn": datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        }
        raw = json.dumps(content, separators=(",", ":")).encode()
        body = b'{"Content":' + raw + b',"HashCode":"' + sign(raw, secret).encode() + b'"}'
        for url in urls:
            for _ in range(1 + duplicates):
                self._send(url, body, topic, key)
        return len(urls) * (1 + duplicates)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every delivery queued so far was attempted (tests)."""
        done = threading.Event()
        self._start()
        self._outbox.put(done)
        if not done.wait(timeout):
            raise TimeoutError("webhook deliveries still pending")

    def _send(self, url: str, body: bytes, topic: str | None, key: str | None) -> None:
        self._start()
        self._outbox.put(Outgoing(url, body, topic, key))

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver, name="sandbox-webhooks", daemon=True)
                self._thread.start()

    def _deliver(self) -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                item = self._outbox.get()
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                status: int | None = None
                error = None
                try:
                    headers = {"Content-Type": "application/json"}
                    status = client.post(item.url, content=item.body, headers=headers).status_code
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                with self._lock:
                    self.attempts.append(Attempt(item.url, item.topic, item.key, status, error))
