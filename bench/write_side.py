"""The write side alone: the same pages, fetched once and held in memory, fed to raw COPY, to exact-sync's engine
and to the naive ORM loader. The difference between their times is what each costs beyond fetching, measured
directly (no fetch time to subtract, no overlap with fetching to hide it)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import psycopg
from sqlalchemy.orm import Session, sessionmaker

from bench.loaders import READ, STREAMS, LoadResult, StreamClock, copy_raw_page, merge_page, psycopg_conninfo
from syncs.engine.streams import streams_for, sync_division
from syncs.entities.registry import ENTITIES
from syncs.exact.client import ExactClient
from syncs.exact.odata import Page
from worker.locks import advisory_lock, division_key, guard_commits


@dataclass(frozen=True)
class FetchedPages:
    """Every page of every stream the engine reads for `entities`, per endpoint, as the API sent them."""

    division: int
    by_endpoint: Mapping[str, list[Page]]

    def pages(
        self, division: int, endpoint: str, params: Mapping[str, str], *, resume_url: str | None = None
    ) -> Iterator[Page]:
        """A PageSource replaying the fetched pages (`params` and `resume_url` are those they were fetched with)."""
        return iter(self.by_endpoint[endpoint])

    def rows_of(self, endpoint: str) -> Iterator[list[dict[str, object]]]:
        return (page.rows for page in self.by_endpoint[endpoint])

    @property
    def records(self) -> int:
        """Rows of the entity streams (the deletions stream is not a record)."""
        return sum(len(page.rows) for spec in STREAMS for page in self.by_endpoint[spec.endpoint])


def fetch_all(client: ExactClient, division: int, entities: Sequence[str]) -> FetchedPages:
    """Read every page of a full run of `entities` (and the deletions stream) into memory."""
    found = {
        stream.endpoint: list(client.pages(division, stream.endpoint, stream.params(division, 0)))
        for stream in streams_for(entities)
    }
    return FetchedPages(division, found)


def copy_written(fetched: FetchedPages, database_url: str) -> LoadResult:
    """The physical limit's write side: COPY each page's rows as fetched (sync/Deleted's too), one transaction per
    page."""
    records, clock = 0, StreamClock()
    with psycopg.connect(psycopg_conninfo(database_url)) as conn:
        started = time.perf_counter()
        clock.restart()
        for stream in READ:
            for rows in fetched.rows_of(stream.endpoint):
                copy_raw_page(conn, stream, rows)
                if stream.name in ENTITIES:
                    records += len(rows)
                    clock.page_done(stream.name, len(rows))
        seconds = time.perf_counter() - started
    return LoadResult(records, records, seconds, 0, clock.timings())


def engine_written(fetched: FetchedPages, database_url: str, connection_id: int, entities: Sequence[str]) -> LoadResult:
    """exact-sync's write side: `sync_division` (a full run) on the fetched pages, under the division's lock with
    its commit guard, as `worker.runs.sync_one_division` runs it: every page's transaction with its resume point,
    feed row and lock check."""
    read, clock = 0, StreamClock()

    def progress(stream: str, count: int) -> None:
        nonlocal read
        read += count
        clock.page_done(stream, count)

    with advisory_lock(database_url, division_key(connection_id, fetched.division)) as lock:
        assert lock is not None, "nothing else syncs the benchmark's division"
        guarded = guard_commits(database_url, lock)
        started = time.perf_counter()
        clock.restart()
        counts = sync_division(
            guarded, fetched, connection_id, fetched.division, entities, full=True, progress=progress
        )
        seconds = time.perf_counter() - started
    return LoadResult(read, counts.inserted + counts.updated, seconds, 0, clock.timings())


def naive_written(fetched: FetchedPages, sessions: sessionmaker[Session], quotas: Sequence[int]) -> LoadResult:
    """The naive loader's write side on the first pages holding each stream's quota of records."""
    records, written, clock = 0, 0, StreamClock()
    started = time.perf_counter()
    for spec, quota in zip(STREAMS, quotas, strict=True):
        done = 0
        for rows in fetched.rows_of(spec.endpoint):
            if done >= quota:
                break
            written += merge_page(sessions, spec, rows, fetched.division)
            done += len(rows)
            clock.page_done(spec.name, len(rows))
        records += done
    return LoadResult(records, written, time.perf_counter() - started, 0, clock.timings())
