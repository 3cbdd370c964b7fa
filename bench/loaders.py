"""The comparison loaders, all reading through ExactClient the same sync endpoints with the same
`$filter`/`$select` as the engine:

- fetch only: every page a run reads (the entity streams, then sync/Deleted, which a run reads too: the same
  requests), read and decoded, nothing written;
- the physical-limit ceiling: the same pages, each page's rows COPYed as fetched (one text column per selected
  field, plus the row as jsonb) into tables without keys or indexes: no mapping, no upsert;
- mapped COPY: the entity modules' own `map_row`, then COPY into unindexed twins of the synced tables (the ceiling
  plus exact-sync's mapping: what the mapping costs);
- a naive ORM loader: `session.merge` per mapped object.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bench.environment import BENCH_ENTITIES, SYNCED_TABLES
from models.synced import SYNCED_MODELS, SyncedRecord
from syncs.engine.streams import Stream, streams_for
from syncs.entities.base import Record, Row
from syncs.entities.registry import ENTITIES, EntitySpec
from syncs.exact.client import ExactClient

STREAMS: tuple[EntitySpec, ...] = tuple(ENTITIES[name] for name in BENCH_ENTITIES)
# What a full run reads, request for request: the entity streams, then sync/Deleted (its rows are no records).
READ: tuple[Stream, ...] = tuple(streams_for(BENCH_ENTITIES))
ENTITY_READS: tuple[Stream, ...] = tuple(stream for stream in READ if stream.name in ENTITIES)  # STREAMS' order
COPY_PREFIX = "bench_copy_"
RAW_PREFIX = "bench_raw_"


@dataclass(frozen=True)
class StreamTiming:
    """One stream of one load: records read, seconds, and each page's seconds (fetch + write)."""

    name: str
    records: int
    seconds: float
    pages: tuple[float, ...]

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def page_ms(self, first: bool) -> float:
        """Mean milliseconds per page over the first (or last) tenth of the pages, at least one page."""
        if not self.pages:
            return 0.0
        n = max(1, len(self.pages) // 10)
        chosen = self.pages[:n] if first else self.pages[-n:]
        return 1000 * sum(chosen) / len(chosen)


class StreamClock:
    """Collects per-page and per-stream times from page-done events."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._streams: dict[str, tuple[int, list[float]]] = {}

    def restart(self) -> None:
        self._last = time.perf_counter()

    def page_done(self, stream: str, records: int) -> None:
        now = time.perf_counter()
        count, pages = self._streams.setdefault(stream, (0, []))
        pages.append(now - self._last)
        self._streams[stream] = (count + records, pages)
        self._last = now

    def timings(self) -> tuple[StreamTiming, ...]:
        return tuple(
            StreamTiming(name, count, sum(pages), tuple(pages)) for name, (count, pages) in self._streams.items()
        )


@dataclass(frozen=True)
class LoadResult:
    records: int  # rows read from the API (accounts + invoice lines)
    rows_written: int  # rows sent to Postgres (invoice headers included)
    seconds: float
    api_calls: int
    streams: tuple[StreamTiming, ...] = ()


def stream_quotas(sizes: Sequence[int], limit: int) -> list[int]:
    """Records per stream for a subset of `limit` records in all, shared in proportion to each stream's size."""
    total = sum(sizes)
    if limit <= 0 or limit >= total:
        return list(sizes)
    return [min(size, math.ceil(limit * size / total)) for size in sizes]


def read_pages(client: ExactClient, division: int, stream: Stream) -> Iterator[list[dict[str, Any]]]:
    """A stream's pages as a full run reads them."""
    return (page.rows for page in client.pages(division, stream.endpoint, stream.params(division, 0)))


def fetch_only(client: ExactClient, division: int) -> LoadResult:
    """Fetch and decode every page a run reads, write nothing: what any loader pays before touching Postgres."""
    calls, records, clock = client.api_calls, 0, StreamClock()
    started = time.perf_counter()
    for stream in READ:
        for rows in read_pages(client, division, stream):
            if stream.name in ENTITIES:
                records += len(rows)
                clock.page_done(stream.name, len(rows))
    return LoadResult(records, 0, time.perf_counter() - started, client.api_calls - calls, clock.timings())


def _orm_objects(spec: EntitySpec, row: Row, division: int) -> list[SyncedRecord]:
    return [
        SYNCED_MODELS[table](**record) for table, found in spec.records([row], division).items() for record in found
    ]


def merge_page(sessions: sessionmaker[Session], spec: EntitySpec, rows: Sequence[Row], division: int) -> int:
    """One `session.merge` per mapped object of a page, one commit; the objects written."""
    written = 0
    with sessions.begin() as session:
        for row in rows:
            for obj in _orm_objects(spec, row, division):
                session.merge(obj)
                written += 1
    return written


def naive_load(
    client: ExactClient, sessions: sessionmaker[Session], division: int, quotas: Sequence[int]
) -> LoadResult:
    """One `session.merge` per mapped object, a commit per page; stops a stream once its quota is read."""
    calls, records, written, clock = client.api_calls, 0, 0, StreamClock()
    started = time.perf_counter()
    for spec, stream, quota in zip(STREAMS, ENTITY_READS, quotas, strict=True):
        done = 0
        for rows in read_pages(client, division, stream):
            written += merge_page(sessions, spec, rows, division)
            done += len(rows)
            clock.page_done(spec.name, len(rows))
            if done >= quota:
                break
        records += done
        clock.restart()  # the next stream's first page starts now, not when the generator was abandoned
    return LoadResult(records, written, time.perf_counter() - started, client.api_calls - calls, clock.timings())


def _page_records(spec: EntitySpec, rows: Sequence[Row], division: int) -> dict[str, list[Record]]:
    """The records the engine's page writer would send, per target table."""
    return spec.records(rows, division)


def psycopg_conninfo(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_copy_tables(database_url: str) -> None:
    """Empty twins of the synced tables with their columns and defaults only: no key, no index."""
    with psycopg.connect(psycopg_conninfo(database_url), autocommit=True) as conn:
        for source in SYNCED_TABLES:
            conn.execute(f'DROP TABLE IF EXISTS "{COPY_PREFIX}{source}"')
            conn.execute(f'CREATE TABLE "{COPY_PREFIX}{source}" (LIKE "{source}" INCLUDING DEFAULTS)')


def _raw_table(stream: Stream) -> str:
    return f"{RAW_PREFIX}{stream.name}"


def create_raw_tables(database_url: str) -> None:
    """One table per stream: a text column per selected field and the row as jsonb; no key, no index."""
    with psycopg.connect(psycopg_conninfo(database_url), autocommit=True) as conn:
        for stream in READ:
            columns = ", ".join(f'"{field}" text' for field in stream.select.split(","))
            conn.execute(f'DROP TABLE IF EXISTS "{_raw_table(stream)}"')
            conn.execute(f'CREATE TABLE "{_raw_table(stream)}" ({columns}, raw jsonb)')


def copy_raw_page(conn: psycopg.Connection[Any], stream: Stream, rows: Sequence[Row]) -> None:
    """COPY a page's rows as fetched (a text column per selected field, the row as jsonb), one transaction."""
    fields = stream.select.split(",")
    names = ", ".join(f'"{field}"' for field in fields)
    statement = f'COPY "{_raw_table(stream)}" ({names}, raw) FROM STDIN'
    with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([*(row.get(field) for field in fields), Jsonb(row)])


def raw_copy_load(client: ExactClient, database_url: str, division: int) -> LoadResult:
    """The physical limit: fetch each page a run reads, then COPY its rows as fetched, one transaction per page."""
    calls, records, clock = client.api_calls, 0, StreamClock()
    with psycopg.connect(psycopg_conninfo(database_url)) as conn:
        started = time.perf_counter()
        clock.restart()
        for stream in READ:
            for rows in read_pages(client, division, stream):
                copy_raw_page(conn, stream, rows)
                if stream.name in ENTITIES:
                    records += len(rows)
                    clock.page_done(stream.name, len(rows))
        seconds = time.perf_counter() - started
    return LoadResult(records, records, seconds, client.api_calls - calls, clock.timings())


def raw_records(database_url: str) -> int:
    """Records COPYed by the physical limit (rows of the entity streams)."""
    total = 0
    with psycopg.connect(psycopg_conninfo(database_url)) as conn:
        for stream in READ:
            if stream.name in ENTITIES:
                found = conn.execute(f'SELECT count(*) FROM "{_raw_table(stream)}"').fetchone()
                total += int(found[0]) if found else 0
    return total


def _copy_value(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


def copy_load(client: ExactClient, database_url: str, division: int) -> LoadResult:
    """Fetch, map, and COPY each page into the unindexed twins, one transaction per page."""
    calls, records, written, clock = client.api_calls, 0, 0, StreamClock()
    with psycopg.connect(psycopg_conninfo(database_url)) as conn:
        started = time.perf_counter()
        clock.restart()
        for spec, stream in zip(STREAMS, ENTITY_READS, strict=True):
            for rows in read_pages(client, division, stream):
                with conn.transaction(), conn.cursor() as cursor:
                    for table, page in _page_records(spec, rows, division).items():
                        if not page:
                            continue
                        columns = tuple(page[0])
                        names = ", ".join(f'"{name}"' for name in columns)
                        with cursor.copy(f'COPY "{COPY_PREFIX}{table}" ({names}) FROM STDIN') as copy:
                            for record in page:
                                copy.write_row([_copy_value(record[name]) for name in columns])
                        written += len(page)
                records += len(rows)
                clock.page_done(spec.name, len(rows))
        seconds = time.perf_counter() - started
    return LoadResult(records, written, seconds, client.api_calls - calls, clock.timings())
