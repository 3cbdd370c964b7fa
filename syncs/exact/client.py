"""The HTTP client for Exact Online's REST API: auth, the shared rate gate, bounded retries, OData paging.

It raises syncs.core.errors only. 429s are waited out through the rate gate (not failures); timeouts, connection
errors and 5xx are retried a few times with exponential backoff and jitter, all timed by the injected clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.crypto import TokenCipher
from syncs.core.errors import (
    AmbiguousWriteError,
    ConfigurationError,
    ExactRequestError,
    ExactServerError,
    ExactUnavailableError,
    ForeignHostError,
    MalformedResponseError,
    PaginationLoopError,
    RateLimitedError,
)
from syncs.core.settings import Backoff, Settings
from syncs.exact.auth import ExactAuth
from syncs.exact.exact_time import exact_time_for
from syncs.exact.oauth import OAuthClient
from syncs.exact.odata import Page, decode_json, error_message, page_from_json
from syncs.exact.tls import tls_context
from syncs.exact.transport import DIVISION_KEY, BudgetedTransport
from syncs.limits.callstats import CallStats
from syncs.limits.errorbudget import ErrorBudget
from syncs.limits.ratelimit import RateGate
from syncs.tokens.store import TokenRefresher, TokenStore

log = structlog.get_logger(__name__)
RETRY_BACKOFF = Backoff(1.0, 30.0)  # GETs after a timeout, a lost connection or a 5xx (with jitter)


class ExactClient:
    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        gate: RateGate,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_attempts: int = 4,
        max_rate_limited: int = 5,
        backoff: Backoff = RETRY_BACKOFF,
        on_close: tuple[Any, ...] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_calls = 0
        self.refresher: TokenRefresher | None = None  # set by open_client
        self._http = http
        self._gate = gate
        self._clock = clock
        self._max_attempts = max_attempts
        self._max_rate_limited = max_rate_limited
        self._backoff = backoff
        self._on_close = on_close
        http.event_hooks["response"].append(self._after_receive)

    # -- public API ------------------------------------------------------------------------------------------

    def get_json(self, path_or_url: str, params: Mapping[str, str] | None = None, division: int | None = None) -> Any:
        url = self._url(path_or_url, division)
        response = self._get(url, params, division)
        return decode_json(response.content, url)

    def pages(
        self, division: int, endpoint: str, params: Mapping[str, str], *, resume_url: str | None = None
    ) -> Iterator[Page]:
        """Each page (its rows as Exact sent them, and its d.__next); follows d.__next verbatim, refuses to loop.

        With `resume_url` (a d.__next stored from an earlier enumeration) the enumeration continues there: the URL
        carries its own query, so `params` is not sent, and it must be on our host like any d.__next.
        """
        if resume_url is None:
            url = self._url(endpoint, division)
            response = self._get(url, params, division)
        else:
            url = self._url(resume_url, division)
            response = self._get(url, None, division)
        seen = {str(response.request.url)}
        while True:
            page = page_from_json(decode_json(response.content, url), url)
            yield page
            if page.next_url is None:
                return
            if page.next_url in seen:
                raise PaginationLoopError(f"d.__next of {url} points at a page already fetched: {page.next_url}")
            seen.add(page.next_url)
            url = self._url(page.next_url, division)
            response = self._get(url, None, division)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        division: int | None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        """Any call (GET, POST, PUT, DELETE) through the same auth, budgets and retry rules; a 2xx response.

        A 4xx raises ExactRequestError carrying Exact's body; a write that may have reached Exact without an
        answer raises AmbiguousWriteError and is never re-sent here."""
        return self._send(method.upper(), self._url(path_or_url, division), params, division, body)

    def current_me(self) -> dict[str, Any]:
        url = self._url("current/Me", None)
        page = page_from_json(self.get_json(url), url)
        if not page.rows:
            raise MalformedResponseError(f"response from {url} holds no Me record")
        return page.rows[0]

    def close(self) -> None:
        self._http.close()
        for resource in self._on_close:
            resource.close()

    def __enter__(self) -> ExactClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------------------

    def _url(self, path_or_url: str, division: int | None) -> str:
        if path_or_url.startswith(("http://", "https://")):
            ours, theirs = urlsplit(self.base_url), urlsplit(path_or_url)
            if (ours.scheme, ours.netloc.lower()) != (theirs.scheme, theirs.netloc.lower()):
                # Never send our bearer token to another host.
                raise ForeignHostError(f"URL {path_or_url} is not on {self.base_url}")
            return path_or_url
        path = path_or_url.lstrip("/")
        return f"{self.base_url}/api/v1/{division}/{path}" if division is not None else f"{self.base_url}/api/v1/{path}"

    def _get(self, url: str, params: Mapping[str, str] | None, division: int | None) -> httpx.Response:
        return self._send("GET", url, params, division)

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        division: int | None,
        body: Any = None,
    ) -> httpx.Response:
        """One call with the retry rules. A GET is retried after a timeout, a lost connection or a 5xx; a write
        only when it never left (connect error): otherwise Exact may have stored it, so AmbiguousWriteError."""
        extensions = {DIVISION_KEY: str(division) if division is not None else "current"}
        write = method != "GET"
        failures = rate_limited = 0
        while True:
            request = self._http.build_request(
                method, url, params=dict(params) if params else None, json=body if write else None
            )
            request.extensions.update(extensions)
            try:
                response = self._http.send(request)
            except httpx.TimeoutException as exc:
                failures += 1
                if write and not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                    raise AmbiguousWriteError(f"{method} {url} timed out ({type(exc).__name__})") from exc
                self._retry_or_raise(
                    failures, ExactUnavailableError(f"{method} {url} timed out ({type(exc).__name__})")
                )
                continue
            except httpx.TransportError as exc:
                failures += 1
                if write and not isinstance(exc, httpx.ConnectError):
                    raise AmbiguousWriteError(f"{method} {url} failed: {type(exc).__name__}") from exc
                self._retry_or_raise(failures, ExactUnavailableError(f"{method} {url} failed: {type(exc).__name__}"))
                continue
            status = response.status_code
            if status == 429:
                rate_limited += 1
                if rate_limited >= self._max_rate_limited:
                    retry_at = self._gate.status(extensions[DIVISION_KEY]).blocked_until or self._clock.now() + 60
                    raise RateLimitedError(f"{method} {url}: {rate_limited} consecutive 429 answers", retry_at)
                continue  # the gate recorded the block; the next send waits for it (a 429 stored nothing)
            rate_limited = 0
            if status >= 500:
                failures += 1
                message = error_message(response.content) or response.reason_phrase
                if write:
                    raise AmbiguousWriteError(f"{method} {url} answered {status}: {message}")
                self._retry_or_raise(failures, ExactServerError(f"{method} {url} answered {status}: {message}", status))
                continue
            if 200 <= status < 300:
                return response
            raise _request_error(method, url, response)

    def _retry_or_raise(self, failures: int, error: Exception) -> None:
        if failures >= self._max_attempts:
            raise error
        delay = self._backoff.delay(failures)
        delay = random.uniform(delay / 2, delay)  # jitter so workers do not retry in step
        log.warning("exact.retry", error=str(error), attempt=failures, delay=round(delay, 3))
        self._clock.sleep(delay)

    def _after_receive(self, response: httpx.Response) -> None:
        # The budgets are held by BudgetedTransport (every request passes it); here we only count answers.
        self.api_calls += 1


def _request_error(method: str, url: str, response: httpx.Response) -> ExactRequestError:
    response.read()
    message = error_message(response.content) or response.text[:200] or response.reason_phrase
    reason = response.headers.get("Reason")
    detail = f" (Reason: {reason})" if reason else ""
    return ExactRequestError(
        f"{method} {url} answered {response.status_code}: {message}{detail}",
        response.status_code,
        reason,
        response.content,
    )


def open_client(
    settings: Settings,
    connection_id: int,
    region: str,
    *,
    sessions: sessionmaker[Session],
    redis: Redis[Any],
    clock: Clock = SYSTEM_CLOCK,
    transport: httpx.BaseTransport | None = None,
) -> ExactClient:
    """Everything wired for one connection; close it (or use it as a context manager) when done."""
    if not settings.exact_client_id or settings.exact_client_secret is None:
        raise ConfigurationError("EXACT_CLIENT_ID and EXACT_CLIENT_SECRET must be set")
    key = settings.token_encryption_key.get_secret_value() if settings.token_encryption_key else None
    base_url = settings.base_url_for(region)
    exact_time = exact_time_for(settings, redis, clock, region)  # shared by the token endpoint and the API
    oauth = OAuthClient(
        base_url,
        settings.exact_client_id,
        settings.exact_client_secret.get_secret_value(),
        clock=clock,
        timeout=settings.http_timeout_seconds,
        transport=transport,
        exact_time=exact_time,
    )
    store = TokenStore(sessions, TokenCipher(key))
    refresher = TokenRefresher(store, oauth, redis, settings, sessions, clock)
    gate = RateGate(
        redis,
        settings.redis_key_prefix,
        clock,
        max_in_flight=settings.rate_max_in_flight,
        slot_ttl=settings.rate_in_flight_ttl_seconds,
        max_wait=settings.rate_max_wait_seconds,
        reset_margin=settings.rate_reset_margin_seconds,
    )
    errors = ErrorBudget(redis, settings.redis_key_prefix, clock, connection_id, settings.error_budget_per_hour)
    auth = ExactAuth(refresher, connection_id)
    http = httpx.Client(
        auth=auth,
        headers={"Accept": "application/json"},
        timeout=settings.http_timeout_seconds,
        transport=BudgetedTransport(
            transport or httpx.HTTPTransport(verify=tls_context()),
            gate,
            errors,
            auth.reauthorize,
            CallStats(redis, settings.redis_key_prefix, clock),
            exact_time,
        ),
        follow_redirects=False,
    )
    client = ExactClient(http, base_url, gate, clock=clock, on_close=(oauth,))
    client.refresher = refresher
    return client
