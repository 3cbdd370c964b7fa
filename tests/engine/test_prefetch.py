"""Page prefetch (syncs.engine.prefetch): the next pages are fetched and prepared while the current one is
written, two pages ahead at most, and a failed fetch, preparation or write loses nothing that was committed."""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from models import Account
from syncs.core.errors import ExactServerError, MalformedResponseError
from syncs.engine import deletions, pipeline, streams
from syncs.engine.cursors import save_progress
from syncs.engine.prefetch import HANDOVER_SECONDS, prefetched
from syncs.engine.streams import (
    PageSource,
    Stream,
    SyncCounts,
    open_stream,
    streams_for,
    sync_division,
    write_stream,
)
from syncs.entities.base import PageResult, Row
from syncs.entities.writer import PreparedPage
from syncs.exact.client import ExactClient
from syncs.exact.odata import Page
from syncs.exact.transport import BudgetedTransport
from syncs.limits.ratelimit import Slot
from tests.engine.support import DIVISION, FAKE_BASE, FakeExact
from tests.engine.test_engine import ACCOUNTS, DELETED, count, cursor, many_accounts, progress_state


def sync_stream(
    sessions: sessionmaker[Session], source: PageSource, connection_id: int, stream: Stream
) -> SyncCounts:
    """One stream on its own (no deletions stream after it)."""
    return write_stream(
        sessions, connection_id, DIVISION, open_stream(sessions, source, connection_id, DIVISION, stream)
    )


def accounts_stream(write: object) -> Stream:
    base = streams_for(["accounts"])[0]
    return dataclasses.replace(base, write=write)  # type: ignore[arg-type]


def test_the_next_page_is_fetched_while_the_current_one_is_written(
    db: sessionmaker[Session], connection_id: int
) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(15))  # five pages
    plain = streams_for(["accounts"])[0]
    fetched_while_writing: list[int] = []

    def write(session: Session, division: int, page: PreparedPage) -> PageResult:
        written = len(fetched_while_writing)  # pages written before this one
        ahead = min(written + 3, 5)  # this page, the next one prepared and the one after fetched
        # Without prefetch this waits in vain; the short wait after it gives a third page ahead time to show.
        for _ in range(500):
            if len(exact.served) >= ahead:
                break
            threading.Event().wait(0.01)
        threading.Event().wait(0.05)
        fetched_while_writing.append(len(exact.served))
        return plain.write(session, division, page)

    counts = sync_stream(db, exact, connection_id, accounts_stream(write))

    assert counts == SyncCounts(inserted=15)
    # While page 1 was written pages 2 and 3 were fetched, while page 2 was written page 4, and so on: two pages
    # ahead of the engine, never more.
    assert fetched_while_writing == [3, 4, 5, 5, 5]
    assert count(db, Account) == 15


def test_the_next_page_is_prepared_on_its_own_thread_while_the_current_one_is_written(
    db: sessionmaker[Session], connection_id: int
) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(9))  # three pages
    plain = streams_for(["accounts"])[0]
    prepared: list[tuple[str, int]] = []  # (thread, pages written by then) per page prepared
    written = 0

    def prepare(division: int, rows: Sequence[Row]) -> PreparedPage:
        prepared.append((threading.current_thread().name, written))
        page: PreparedPage = plain.prepare(division, rows)
        return page

    def write(session: Session, division: int, page: PreparedPage) -> PageResult:
        nonlocal written
        if written < 2:  # the next page is prepared during this write, or never (inline this waits in vain)
            for _ in range(500):
                if len(prepared) >= written + 2:
                    break
                threading.Event().wait(0.01)
        written += 1
        return plain.write(session, division, page)

    stream = dataclasses.replace(plain, prepare=prepare, write=write)
    assert sync_stream(db, exact, connection_id, stream) == SyncCounts(inserted=9)
    # Every page prepared on the prepare thread, the next one while the one before was written.
    assert prepared == [(f"prefetch-prepare-{DIVISION}:{ACCOUNTS}", n) for n in (0, 0, 1)]
    assert count(db, Account) == 9


def test_a_page_is_prepared_only_once_the_next_request_has_left(
    db: sessionmaker[Session], exact: ExactClient, connection_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetch thread sends its next request before a preparation competes with it for the GIL (see
    syncs.engine.pipeline); through the real client and transport, against the sandbox."""
    monkeypatch.setattr(pipeline, "GRACE_SECONDS", 10.0)  # only the request leaving (or the end) lets it start
    events: list[str] = []
    send = httpx.HTTPTransport.handle_request

    def sending(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        events.append("request")
        return send(transport, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", sending)
    plain = streams_for(["accounts"])[0]

    def prepare(division: int, rows: Sequence[Row]) -> PreparedPage:
        events.append("prepare")
        page: PreparedPage = plain.prepare(division, rows)
        return page

    counts = sync_stream(db, exact, connection_id, dataclasses.replace(plain, prepare=prepare))

    pages = events.count("request")
    assert pages >= 3 and counts.inserted > 0
    # Page N is prepared after request N+1 was sent; the last page once there was nothing more to ask for.
    assert events == ["request", "request"] + ["prepare", "request"] * (pages - 2) + ["prepare"] * 2


def test_a_page_that_fails_to_prepare_fails_where_it_is_written_keeping_the_pages_before_it(
    db: sessionmaker[Session], connection_id: int
) -> None:
    exact = FakeExact(page_size=3)
    rows = many_accounts(9)
    rows[4] = {**rows[4], "ID": "not-a-guid"}  # page 2
    exact.add(ACCOUNTS, *rows)
    with pytest.raises(MalformedResponseError, match=r"page 2: accounts row 'not-a-guid': field ID"):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert count(db, Account) == 3  # page 1, with its resume point
    assert progress_state(db, connection_id, "accounts")[1] == 102
    assert cursor(db, connection_id, "accounts") == 0


def test_prefetching_hands_the_gil_over_often() -> None:
    """The engine's thread gets the GIL back soon after each answer from Postgres (see syncs.engine.prefetch)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default
    try:
        list(prefetched(iter([1, 2])))
        assert sys.getswitchinterval() == pytest.approx(HANDOVER_SECONDS)  # kept in whole microseconds
    finally:
        sys.setswitchinterval(before)


def test_a_failure_in_the_prefetched_fetch_keeps_the_pages_before_it(
    db: sessionmaker[Session], connection_id: int
) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(10))  # Timestamps 100..109 -> pages of 3
    exact.fail_after[ACCOUNTS] = 2  # page 3's fetch fails, while page 2 is being written
    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert count(db, Account) == 6  # pages 1 and 2 committed, with their resume point
    assert cursor(db, connection_id, "accounts") == 0
    resume_url, pending = progress_state(db, connection_id, "accounts")
    assert resume_url is not None and resume_url.endswith("skiptoken=6") and pending == 105

    del exact.fail_after[ACCOUNTS]
    counts = sync_division(db, exact, connection_id, DIVISION, ["accounts"])
    assert counts == SyncCounts(inserted=4)
    assert count(db, Account) == 10
    assert cursor(db, connection_id, "accounts") == 109
    assert progress_state(db, connection_id, "accounts") == (None, None)


def test_a_failed_write_commits_nothing_of_its_page_and_stops_the_fetches(
    db: sessionmaker[Session], connection_id: int
) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(15))  # five pages
    plain = streams_for(["accounts"])[0]
    pages_written = 0

    def write(session: Session, division: int, page: PreparedPage) -> PageResult:
        nonlocal pages_written
        pages_written += 1
        result = plain.write(session, division, page)
        if pages_written == 2:
            raise MalformedResponseError("bad value (test)")
        return result

    with pytest.raises(MalformedResponseError, match="page 2"):
        sync_stream(db, exact, connection_id, accounts_stream(write))
    assert count(db, Account) == 3  # page 1 only: page 2's transaction rolled back
    assert progress_state(db, connection_id, "accounts")[1] == 102
    assert len(exact.served) <= 4  # page 4 at most was fetched ahead; page 5 never


class ClosableSource:
    """A page iterator that records where it was closed."""

    def __init__(self) -> None:
        self.closed_in: str | None = None
        self.fetched = 0

    def pages(self) -> Iterator[Page]:
        try:
            for number in range(100):
                self.fetched += 1
                yield Page([{"n": number}], "next")
        finally:
            self.closed_in = threading.current_thread().name


def test_stopping_early_closes_the_source_on_its_own_thread() -> None:
    source = ClosableSource()
    pages = prefetched(source.pages(), "test")
    assert next(pages).rows == [{"n": 0}]
    pages.close()
    for _ in range(500):
        if source.closed_in is not None:
            break
        threading.Event().wait(0.01)
    assert source.closed_in == "prefetch-test"
    assert source.fetched <= 2


def test_an_empty_source_and_a_failing_first_fetch() -> None:
    class Failing:
        def pages(
            self, division: int, endpoint: str, params: Mapping[str, str], *, resume_url: str | None = None
        ) -> Iterator[Page]:
            raise ExactServerError("down (test)", 502)
            yield  # pragma: no cover

    assert list(prefetched(iter([]))) == []
    with pytest.raises(ExactServerError, match="down"):
        next(prefetched(Failing().pages(DIVISION, ACCOUNTS, {})))


def _with_accounts_writer(monkeypatch: pytest.MonkeyPatch, write: object) -> None:
    """sync_division's streams as they are, with accounts' pages written by `write`."""
    plain = streams.streams_for

    def instrumented(names: Sequence[str], reconcile: bool = False) -> list[Stream]:
        found = plain(names, reconcile)
        return [dataclasses.replace(s, write=write) if s.name == "accounts" else s for s in found]  # type: ignore[arg-type]

    monkeypatch.setattr(streams, "streams_for", instrumented)


def test_the_next_stream_is_fetched_while_the_last_page_is_written(
    db: sessionmaker[Session], connection_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(6))  # two pages, then the deletions stream
    plain = streams_for(["accounts"])[0]
    served_during_last_write: list[str] = []

    def write(session: Session, division: int, page: PreparedPage) -> PageResult:
        if count(db, Account) == 3:  # the last page: sync/Deleted's first page is fetched during its write
            for _ in range(500):
                if any(endpoint == DELETED for endpoint, _ in exact.served):
                    break
                threading.Event().wait(0.01)
            served_during_last_write.extend(endpoint for endpoint, _ in exact.served)
        return plain.write(session, division, page)

    _with_accounts_writer(monkeypatch, write)
    counts = sync_division(db, exact, connection_id, DIVISION, ["accounts"])

    assert counts == SyncCounts(inserted=6)
    # Requests one after another: the deletions stream started once the accounts' last page had arrived.
    assert served_during_last_write == [ACCOUNTS, ACCOUNTS, DELETED]
    assert cursor(db, connection_id, "accounts") == 105


def test_a_failed_last_write_stops_the_next_stream_and_moves_no_cursor(
    db: sessionmaker[Session], connection_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(6))
    plain = streams_for(["accounts"])[0]

    def write(session: Session, division: int, page: PreparedPage) -> PageResult:
        result = plain.write(session, division, page)
        if count(db, Account) == 3:
            for _ in range(500):  # the deletions stream has been opened (its first page fetched)
                if any(endpoint == DELETED for endpoint, _ in exact.served):
                    break
                threading.Event().wait(0.01)
            raise MalformedResponseError("bad value (test)")
        return result

    _with_accounts_writer(monkeypatch, write)
    with pytest.raises(MalformedResponseError, match="page 2"):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])

    assert count(db, Account) == 3  # page 1 only
    assert cursor(db, connection_id, "accounts") == 0 and cursor(db, connection_id, "deleted") is None
    for _ in range(500):  # the opened stream's fetch thread was told to stop, and ends
        if not any(t.name.endswith(DELETED) for t in threading.enumerate()):
            break
        threading.Event().wait(0.01)
    assert not any(t.name.endswith(DELETED) for t in threading.enumerate())


class GatedSource:
    """A page iterator whose second fetch waits for `release` (a request in flight), the others answered at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = threading.Event()
        self.fetched = 0

    def pages(self) -> Iterator[Page]:
        try:
            for number in range(100):
                if number == 1:
                    self.release.wait(10)
                self.fetched += 1
                yield Page([{"n": number}], "next")
        finally:
            self.closed.set()


def test_stopping_while_a_fetch_is_in_flight_asks_for_no_further_page() -> None:
    """The engine stops (a write failed) while the prepare thread waits for a slow request: that request is the
    last one, not followed by another the prepare thread asks for when it takes that page."""
    source = GatedSource()
    ahead = pipeline.pipelined(source.pages(), lambda division, rows: rows, DIVISION, "gated")
    assert next(ahead).prepared == [{"n": 0}]  # page 2's request is in flight, the prepare thread waiting for it
    ahead.close()
    source.release.set()
    assert source.closed.wait(10)
    assert source.fetched == 2
    for _ in range(500):  # both threads end
        if not any(t.name.endswith("gated") for t in threading.enumerate()):
            break
        threading.Event().wait(0.01)
    assert not any(t.name.endswith("gated") for t in threading.enumerate())


def test_a_failure_opening_the_next_stream_is_raised_after_the_last_page_is_written(
    db: sessionmaker[Session], connection_id: int
) -> None:
    """The next stream is opened while the current one's last page is to be written; a resumed one asks Exact
    for its first page right then, on the engine's thread. When that request fails, the current stream still ends
    (its last page and its cursor committed) and the error is raised where the next stream begins."""
    exact = FakeExact(page_size=3)
    exact.add(ACCOUNTS, *many_accounts(6))  # two pages
    query = urlencode({"$filter": "Timestamp gt 0L", "$select": deletions.SELECT, "$skiptoken": 3})
    resume_url = f"{FAKE_BASE}/api/v1/{DIVISION}/{DELETED}?{query}"
    with db.begin() as session:  # a crashed run's resume point in sync/Deleted
        save_progress(session, connection_id, DIVISION, "deleted", resume_url, 7)
    exact.fail_after[DELETED] = 0  # the resumed request fails

    with pytest.raises(ExactServerError):
        sync_division(db, exact, connection_id, DIVISION, ["accounts"])

    assert exact.calls[-1][1:] == (DELETED, {"$filter": "Timestamp gt 0L", "$select": deletions.SELECT}, resume_url)
    assert count(db, Account) == 6
    assert cursor(db, connection_id, "accounts") == 105  # not only page 1: the enumeration is complete
    assert progress_state(db, connection_id, "accounts") == (None, None)
    assert progress_state(db, connection_id, "deleted")[1] == 7  # its resume point kept for the next run


def test_a_page_that_fails_to_prepare_stops_the_fetches_after_it() -> None:
    """The engine stops at a page that failed to prepare: no page after the one in flight is asked for."""
    source = ClosableSource()

    def prepare(division: int, rows: Sequence[Row]) -> object:
        if rows == [{"n": 1}]:
            raise MalformedResponseError("bad value (test)")
        return rows

    ahead = pipeline.pipelined(source.pages(), prepare, DIVISION, "failing")
    assert next(ahead).error is None
    assert isinstance(next(ahead).error, MalformedResponseError)  # the engine raises it and closes the pipeline
    for _ in range(500):  # the source is closed without the engine closing the pipeline
        if source.closed_in is not None:
            break
        threading.Event().wait(0.01)
    assert source.closed_in == "prefetch-failing"
    assert source.fetched == 3  # page 3 was on its way while page 2 was prepared; page 4 is never asked for
    ahead.close()


class WaitingGate:
    """A rate gate whose second request waits for `budget` (a rate-limited wait in the fetch thread)."""

    def __init__(self) -> None:
        self.budget = threading.Event()
        self.acquired = self.held = 0

    def acquire(self, division: str) -> Slot:
        self.acquired += 1
        if self.acquired == 2:
            self.budget.wait(10)
        self.held += 1
        return Slot(f"slot{self.acquired}", 0.0)

    def release(self, division: str, slot: Slot) -> None:
        self.held -= 1

    def observe(self, division: str, status_code: int, headers: object) -> None:
        pass


def test_stopping_while_a_request_waits_for_budget_does_not_send_it() -> None:
    """A request that has not left when the engine stops (waiting for rate budget, or a retry) is not sent."""
    gate = WaitingGate()
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200)

    transport = BudgetedTransport(httpx.MockTransport(answer), gate)  # type: ignore[arg-type]
    closed = threading.Event()

    def pages() -> Iterator[Page]:
        try:
            for number in range(100):
                transport.handle_request(httpx.Request("GET", f"https://exact.test/api/v1/1/page{number}"))
                yield Page([{"n": number}], "next")
        finally:
            closed.set()

    ahead = pipeline.pipelined(pages(), lambda division, rows: rows, DIVISION, "budget")
    assert next(ahead).prepared == [{"n": 0}]  # page 2's request waits for budget
    ahead.close()
    gate.budget.set()
    assert closed.wait(10)
    assert sent == ["https://exact.test/api/v1/1/page0"] and transport.sent == 1 and gate.held == 0
