"""Page prefetch: an iterator whose next item is produced on a thread of its own while the caller works on the
one before. The engine stacks two (syncs.engine.pipeline): a fetch thread walks a stream's pages, and a
prepare thread converts, validates and serializes each fetched page (the stream's `prepare`). While
the engine writes page N, page N+1 is prepared and page N+2 fetched; and while it writes a stream's last page, the
next stream's first is fetched (sync_division opens the next stream then, and opening starts its first fetch).

Fetching (seconds per 1,000-row page at Exact), preparing (pure Python) and writing (Postgres working while the
engine's thread waits for it) then overlap, so a stream takes about the longest of the three instead of their
sum. What stays as it was:
- one request in flight per division: only the fetch thread asks Exact, walking the source's page iterator in
  order, and it fetches a page only once the one before was taken from it (never more than two pages ahead of
  the engine: one prepared, one fetched); the next stream is opened only once the current one's last page has
  arrived (no d.__next: its enumeration needs no more requests);
- one transaction per page with its resume point, all in the engine's thread: the other threads never touch the
  database, so nothing is committed, or acknowledged, that was not written by the engine;
- errors: a failed fetch is raised in the engine's thread where the engine asks for that page, and a page that
  fails to prepare where the engine writes it, both after the page before it was committed (as without
  prefetch);
- when the engine stops early (a write failed), the threads are told to stop; each finishes what it is doing (a
  request in flight; one that has not left yet, waiting for budget or a retry, is not sent: see
  syncs.engine.pipeline), then closes its source iterator in its own thread (a generator is closed where it runs).

The threads share the GIL. The engine's thread gives it up at every wait for Postgres and needs it back as soon
as the answer is there, while the prepare thread holds it for the whole of a page's preparation. With CPython's
default switch interval (5 ms) every answer would then wait up to 5 ms for the GIL, several times a page, and the
overlap would be lost (measured: no gain at all); at HANDOVER_SECONDS it is kept (`python -m bench.throughput`'s
write side: about 15-20% less per record). So starting a prefetch lowers the process's switch interval to at
most that; it costs a thread that runs alone nothing.
"""

from __future__ import annotations

import contextvars
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Final, Generic, TypeVar, cast

T = TypeVar("T")
_END: Final = object()  # the source is exhausted
_STOP: Final = object()  # the engine wants no more pages
HANDOVER_SECONDS: Final = 0.0002  # the switch interval while prefetching (see the module docstring)


def prefetched(pages: Iterator[T], name: str = "pages", on_close: Callable[[], None] | None = None) -> Prefetched[T]:
    """`pages`' items, the first fetched at once and each next one while the caller works on the one before.
    `on_close`: run by `close` in the caller's thread (see `Prefetched.close`)."""
    return Prefetched(pages, name, on_close)


class Prefetched(Iterator[T], Generic[T]):
    """A page iterator whose thread starts fetching when it is made (see the module docstring); `close` stops it."""

    def __init__(self, pages: Iterator[T], name: str, on_close: Callable[[], None] | None = None) -> None:
        self._on_close = on_close
        self._ready: queue.Queue[object] = queue.Queue(maxsize=1)  # a fetched page, an error, or _END
        self._wanted: queue.Queue[object] = queue.Queue()  # True: fetch the next page; _STOP: stop
        self._done = False
        if sys.getswitchinterval() > HANDOVER_SECONDS:
            sys.setswitchinterval(HANDOVER_SECONDS)
        context = contextvars.copy_context()  # log context (run, connection) travels with the fetches
        thread = threading.Thread(
            target=context.run,
            args=(_fetch_ahead, pages, self._ready, self._wanted),
            name=f"prefetch-{name}",
            daemon=True,
        )
        thread.start()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._ready.get()
        if item is _END or isinstance(item, BaseException):
            self._done = True  # the thread has ended
            if isinstance(item, BaseException):
                raise item
            raise StopIteration
        self._wanted.put(True)  # the next fetch overlaps the caller's work on this page
        return cast(T, item)  # neither _END nor an error: one of `pages`' items

    def close(self) -> None:
        """Stop fetching: the thread finishes a request it may have in flight, then closes the source.

        `on_close` stops what `pages` reads from here, not only once this thread closes `pages`: this thread may be
        waiting for an upstream Prefetched's item (a request in flight), and taking it would start the next one.
        """
        if not self._done:
            self._done = True
            self._wanted.put(_STOP)
        if self._on_close is not None:
            self._on_close()

    def __del__(self) -> None:
        self.close()


def _fetch_ahead(pages: Iterator[T], ready: queue.Queue[object], wanted: queue.Queue[object]) -> None:
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
