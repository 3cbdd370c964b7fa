"""The single choke point for every request to Exact's API: an httpx transport that holds the budgets.

Wrapping the transport (not the client's GET helper) means every request the API client sends passes here:
paged GETs, the retry after a 401, and proxy or write calls when they come. The token endpoint has its own
client and its own limits, so it does not spend the API budget.

Per request: error budget check -> rate budget reservation and an in-flight slot (waits) -> send and read the
body -> record the rate headers, any counted error, the call (per division and hour) and what its `Date` header
says of Exact's clock -> free the slot.

After a wait for budget the access token may be due for a refresh. A refresh can wait for the token lock longer
than an in-flight slot lives, so it never happens while holding one: the slot is given back, the token
refreshed, and a slot acquired again (once; that second reservation spends one more unit of our local count of
the budget, which errs on the safe side).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Protocol

import httpx

from syncs.exact.exact_time import ExactTime
from syncs.limits.callstats import CallStats
from syncs.limits.errorbudget import ErrorBudget, endpoint_of
from syncs.limits.ratelimit import RateGate

DIVISION_KEY = "exact_division"  # request extension naming the division whose budget a request spends
# Called as a request leaves, on a thread that asks to be told (a page pipeline's fetch thread: syncs.engine.pipeline);
# what it raises is raised instead of sending the request.
REQUEST_SENT: ContextVar[Callable[[], None] | None] = ContextVar("exact_request_sent", default=None)


class Reauthorize(Protocol):
    def __call__(self, request: httpx.Request, *, refresh: bool = True) -> bool:
        """Put a valid token on `request`; with refresh=False never refresh, and say False when one is due."""
        ...


class BudgetedTransport(httpx.BaseTransport):
    def __init__(
        self,
        inner: httpx.BaseTransport,
        gate: RateGate,
        errors: ErrorBudget | None = None,
        reauthorize: Reauthorize | None = None,
        stats: CallStats | None = None,
        exact_time: ExactTime | None = None,
    ) -> None:
        self._inner = inner
        self._exact_time = exact_time  # fed from each answer's Date header
        self._stats = stats  # calls per division and hour, for metrics and the dashboard
        self._gate = gate
        self._errors = errors
        # After a wait for budget (up to minutes) the access token put on by the auth flow may have expired.
        self._reauthorize = reauthorize
        self.sent = 0  # requests handed to Exact (a timed-out one may or may not have counted there)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        division = str(request.extensions.get(DIVISION_KEY, "current"))
        endpoint = endpoint_of(request.url.path)
        if self._errors is not None:
            self._errors.check(endpoint)
        slot = self._gate.acquire(division)
        if slot.waited > 0 and self._reauthorize is not None and "Authorization" in request.headers:
            try:
                current = self._reauthorize(request, refresh=False)  # no token request, no lock: quick
            except BaseException:
                self._gate.release(division, slot)
                raise
            if not current:
                self._gate.release(division, slot)
                self._reauthorize(request)  # may wait for the token lock and refresh: without a slot
                # At most once: if this waits again and the token expires meanwhile, the auth flow's 401
                # handling refreshes (outside the transport, so again without a slot).
                slot = self._gate.acquire(division)
                if slot.waited > 0:
                    try:
                        self._reauthorize(request, refresh=False)
                    except BaseException:
                        self._gate.release(division, slot)
                        raise
        try:
            announce = REQUEST_SENT.get()
            if announce is not None:
                announce()
            self.sent += 1
            sent = self._exact_time.clock.now() if self._exact_time is not None else 0.0
            response = self._inner.handle_request(request)
            try:
                response.read()  # the slot covers the whole exchange, body included
            except BaseException:
                response.close()
                raise
            self._gate.observe(division, response.status_code, response.headers)
            if self._exact_time is not None:
                self._exact_time.observe(sent, self._exact_time.clock.now(), response.headers)
            if self._errors is not None:
                self._errors.record(endpoint, response.status_code)
            if self._stats is not None:
                self._stats.record(division, response.status_code)
            return response
        finally:
            self._gate.release(division, slot)

    def close(self) -> None:
        self._inner.close()
