"""Page prefetch: while the engine writes page N, a thread fetches page N+1.

Fetching (seconds per 1,000-row page at Exact) and writing (tens of milliseconds) then overlap, so a stream takes
about the longer of the two instead of their sum. What stays as it was:
- one request in flight per enumeration: the thread walks the source's page iterator in order and fetches the
  next page only once the engine has taken the previous one (never more than one page ahead);
- one transaction per page with its resume point, all in the engine's thread: the fetch thread never touches the
  synced tables, so nothing is committed, or acknowledged, that was not written by the engine;
- errors: a failed fetch is raised in the engine's thread where the engine asks for that page, after the page
  before it was committed (as without prefetch);
- when the engine stops early (a write failed), the thread is told to stop; it finishes the request it may have
  in flight, then closes the source's iterator in its own thread (a generator is closed where it runs).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Generator, Iterator, Mapping
from typing import Final

from syncs.engine.streams import PageSource
from syncs.exact.odata import Page

_END: Final = object()  # the source is exhausted
_STOP: Final = object()  # the engine wants no more pages


class PrefetchingSource:
    """A PageSource whose `pages` fetch one page ahead of the caller on a thread of their own."""

    def __init__(self, source: PageSource) -> None:
        self._source = source

    def pages(
        self, division: int, endpoint: str, params: Mapping[str, str], *, resume_url: str | None = None
    ) -> Iterator[Page]:
        source = self._source.pages(division, endpoint, params, resume_url=resume_url)
        return prefetched(source, f"{division}:{endpoint}")


def prefetched(pages: Iterator[Page], name: str = "pages") -> Generator[Page, None, None]:
    """Yield `pages`' items while fetching the next one on a thread; see the module docstring."""
    ready: queue.Queue[object] = queue.Queue(maxsize=1)  # a fetched page, an error, or _END
    wanted: queue.Queue[object] = queue.Queue()  # True: fetch the next page; _STOP: stop
    context = contextvars.copy_context()  # log context (run, connection) travels with the fetches
    thread = threading.Thread(
        target=context.run, args=(_fetch_ahead, pages, ready, wanted), name=f"prefetch-{name}", daemon=True
    )
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            wanted.put(True)  # the next fetch overlaps the caller's work on this page
            assert isinstance(item, Page)
            yield item
    finally:
        wanted.put(_STOP)


def _fetch_ahead(pages: Iterator[Page], ready: queue.Queue[object], wanted: queue.Queue[object]) -> None:
    try:
        while True:
            try:
                page = next(pages)
            except StopIteration:
                ready.put(_END)
                return
            except BaseException as exc:  # handed to the engine's thread, raised there
                ready.put(exc)
                return
            ready.put(page)
            if wanted.get() is _STOP:
                return
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
