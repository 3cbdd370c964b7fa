"""A stream's pages on their way to the engine: fetched on one thread, prepared on another (syncs.engine.prefetch),
so that while the engine writes page N, page N+1 is prepared and page N+2 fetched.

The prepare thread starts on a page only once the request for the next one has left (or GRACE_SECONDS have
passed, e.g. while that request waits for rate budget): the fetch thread's own work before sending (the access
token, the budget checks) needs the GIL, and a page's preparation holding it meanwhile delayed every request by
about 10 ms (measured at 300 ms per page: 12.6 ms from asking for a page to sending its request, against 2.5 ms
without a preparation running), which a run at Exact's latency pays on every page.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from syncs.engine.prefetch import Prefetched, prefetched
from syncs.entities.base import Row
from syncs.exact.odata import Page
from syncs.exact.transport import REQUEST_SENT

GRACE_SECONDS: Final = 0.02  # the longest a preparation waits for the next request to leave


@dataclass(frozen=True)
class Ready:
    """A fetched page and what its stream prepared of it, or the error preparing raised (raised again where the
    engine writes that page, after the pages before it were committed, so the error names the page)."""

    page: Page
    prepared: Any = None
    error: Exception | None = None


def pipelined(
    pages: Iterator[Page], prepare: Callable[[int, Sequence[Row]], Any], division: int, name: str
) -> Prefetched[Ready]:
    """`pages` fetched on a thread of their own, each prepared by `prepare` on another (its first request is
    sent at once)."""
    departures = _Departures()
    fetched = prefetched(_announced(pages, departures), name)

    def stop() -> None:  # the engine wants no more pages
        departures.stop()  # a request still to leave (waiting for budget, or a retry) is not sent
        fetched.close()

    return prefetched(_prepared(fetched, prepare, division, departures), f"prepare-{name}", on_close=stop)


class PipelineStopped(Exception):
    """Raised in the fetch thread instead of sending a request once the engine wants no more pages."""


class _Departures:
    """How far the fetch thread has got: the fetches it has begun (one per page), and up to which one their
    request has left or was not needed (a page that came without one, or the end)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._begun = 0
        self._left: float = 0
        self._stopped = False

    def sending(self) -> None:
        """The transport's REQUEST_SENT: a request leaves, unless the pipeline was stopped (then it stays)."""
        if self._stopped:
            raise PipelineStopped("the engine wants no more pages: request not sent")
        self.leave()

    def stop(self) -> None:
        self._stopped = True

    def begin(self) -> None:
        with self._changed:
            self._begun += 1

    def leave(self) -> None:
        with self._changed:
            self._left = self._begun
            self._changed.notify_all()

    def end(self) -> None:
        with self._changed:
            self._left = math.inf
            self._changed.notify_all()

    def wait_for(self, fetch: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._left >= fetch, timeout)


def _announced(pages: Iterator[Page], departures: _Departures) -> Iterator[Page]:
    """`pages`, telling `departures` when each next page's request leaves (the transport does, on this thread)."""
    REQUEST_SENT.set(departures.sending)  # in the fetch thread's own context
    try:
        while True:
            departures.begin()
            try:
                page = next(pages)
            except StopIteration:
                return
            departures.leave()  # it came without a request (or its request left already)
            yield page
    finally:
        departures.end()
        close = getattr(pages, "close", None)
        if close is not None:
            close()


def _prepared(
    fetched: Prefetched[Page], prepare: Callable[[int, Sequence[Row]], Any], division: int, departures: _Departures
) -> Iterator[Ready]:
    taken = 0
    try:
        for page in fetched:  # taking a page lets the fetch thread begin the next one
            taken += 1
            departures.wait_for(taken + 1, GRACE_SECONDS)
            if not page.rows:
                yield Ready(page)
                continue
            try:
                prepared = prepare(division, page.rows)
            except Exception as exc:  # raised again in the engine's thread, in the page's place
                fetched.close()  # the engine stops at this page: no page after the one in flight is wanted
                yield Ready(page, error=exc)
                return
            yield Ready(page, prepared)
    finally:
        fetched.close()
