"""Incremental sync of one division: each requested entity stream, then the shared deletions stream.

A stream is one enumeration: a first request `Timestamp gt {cursor}L`, then d.__next to the end. Each page is
written in ONE transaction with the stream's bookkeeping, but the cursor itself moves only when the whole
enumeration is committed, so no row an enumeration has listed is ever skipped, whatever the order in which
Exact sends pages (it does not promise Timestamp order). Upserts are newer-only, so re-reading a row is a no-op.

Cursor rules (`sync_cursors`, one row per connection, division and stream):
- `timestamp`: every row with a lower or equal Timestamp is committed; a fresh enumeration reads
  `Timestamp gt {timestamp}L` (0 when absent). It never moves backwards (GREATEST).
- A page's transaction upserts its rows and records `resume_url` (that page's d.__next: where the enumeration
  continues) and `pending_timestamp` (the highest Timestamp this enumeration has committed). The LAST page (no
  d.__next, possibly empty) does the same and, in the same transaction, moves `timestamp` to the highest of
  itself, `pending_timestamp` and the page's rows, and clears `resume_url` and `pending_timestamp`. Rows in a
  page need not be sorted, and rows sharing a Timestamp may straddle pages: until the end nothing is skipped.
- A crash leaves `resume_url`: the next run of the stream continues that enumeration from there (earlier pages
  are not read again), unless the resume point is older than RESUME_MAX_AGE or no longer matches the stream's
  division, endpoint and $select: then a fresh enumeration starts from `timestamp`. When Exact refuses that URL
  on its first request (an ExactRequestError other than 401 and 403, e.g. an expired skiptoken) or it is not on
  our host, the run logs it, clears the resume point and starts a fresh enumeration from `timestamp` instead
  (re-reading is harmless).
- A full run (also of the deletions stream) starts a fresh enumeration from 0 and replaces any resume point;
  `timestamp` still only moves up. A crashed full run leaves its own resume point, which the next incremental
  run continues (a full run starts over). A full run re-inserts rows missing locally; rows whose stored
  Timestamp equals Exact's are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import structlog
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.errors import ConfigurationError, ExactRequestError, MalformedResponseError
from syncs.engine import cadence, deletions, strategies
from syncs.engine.cursors import save_cursor, save_progress, stored_state
from syncs.engine.pipeline import Ready, pipelined
from syncs.engine.prefetch import Prefetched
from syncs.entities.base import PageResult, Row
from syncs.entities.declaration import Strategy
from syncs.entities.registry import ENTITIES, EntitySpec
from syncs.exact.odata import Page
from syncs.feed.changes import record_change

log = structlog.get_logger(__name__)

Progress = Callable[[str, int], None]
# A stream's page in two steps: `Prepare` needs no database (converting, validating, serializing) and runs ahead
# on the prepare thread; `WritePrepared` sends what it made, in the page's transaction on the engine's thread.
Prepare = Callable[[int, Sequence[Row]], Any]
WritePrepared = Callable[[Session, int, Any], PageResult]


class PageSource(Protocol):
    """What the engine needs of `syncs.exact.client.ExactClient`."""

    def pages(
        self, division: int, endpoint: str, params: Mapping[str, str], *, resume_url: str | None = None
    ) -> Iterator[Page]: ...


@dataclass(frozen=True)
class SyncCounts:
    """Rows written: `inserted`/`updated` count invoice headers and lines alike; `deleted` rows marked.

    `by_stream` splits the same counts per stream (entity name, or "deleted" for sync/Deleted) for the run's
    record and the metrics; equality compares the totals only.
    """

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    by_stream: Mapping[str, tuple[int, int, int]] = field(default_factory=dict, compare=False)

    def __add__(self, other: SyncCounts) -> SyncCounts:
        merged = dict(self.by_stream)
        for name, (inserted, updated, deleted) in other.by_stream.items():
            was_inserted, was_updated, was_deleted = merged.get(name, (0, 0, 0))
            merged[name] = (was_inserted + inserted, was_updated + updated, was_deleted + deleted)
        return SyncCounts(
            self.inserted + other.inserted, self.updated + other.updated, self.deleted + other.deleted, merged
        )

    def of_stream(self, name: str) -> SyncCounts:
        """These totals, recorded as the counts of stream `name`."""
        counts = (self.inserted, self.updated, self.deleted)
        return SyncCounts(*counts, by_stream={name: counts})


@dataclass(frozen=True)
class Stream:
    name: str  # the cursor's entity name
    endpoint: str
    select: str
    prepare: Prepare
    write: WritePrepared
    params: strategies.Params
    resumable: bool = True  # a crashed enumeration may continue from its stored d.__next
    finish: strategies.Finish | None = None  # runs in the last page's transaction of a complete enumeration
    # The next stream may be opened (its cursor read, its first request sent) before this one's last page is
    # written; not when writing a page may reset the division's cursors (a `before` hook: a moved division).
    overlaps_next: bool = True


def entity_stream(spec: EntitySpec, reconcile: bool = False) -> Stream:
    """A stream for one run of an entity. A snapshot's stream remembers the keys it has seen and marks the rest
    deleted at its end; so does every stream of a reconciliation, which reads everything from 0."""
    params = strategies.params_for(spec)
    plain = Stream(
        spec.name,
        spec.endpoint,
        spec.select,
        spec.writer.prepare,
        spec.writer.write_prepared,
        params,
        overlaps_next=spec.writer.before is None,
    )
    if spec.strategy is Strategy.SNAPSHOT or reconcile:
        run = strategies.SnapshotRun(spec)
        if reconcile:
            params = strategies.from_start(params)
        return replace(plain, write=run.write, params=params, resumable=False, finish=run.finish)
    return plain


def streams_for(entities: Sequence[str], reconcile: bool = False) -> list[Stream]:
    """The entity streams asked for (in order, once each), then the deletions stream, which always runs."""
    unknown = [name for name in entities if name not in ENTITIES]
    if unknown:
        raise ConfigurationError(f"unknown entities {unknown}; known: {sorted(ENTITIES)}")
    found = [entity_stream(ENTITIES[name], reconcile) for name in dict.fromkeys(entities)]
    deleted = strategies.sync_params_of(deletions.SELECT)
    found.append(
        Stream(
            deletions.CURSOR_ENTITY,
            deletions.ENDPOINT,
            deletions.SELECT,
            deletions.prepare,
            deletions.write_prepared,
            deleted,
        )
    )
    return found


def sync_division(
    sessions: sessionmaker[Session],
    client: PageSource,
    connection_id: int,
    division: int,
    entities: Sequence[str],
    *,
    full: bool = False,
    progress: Progress | None = None,
    schedule: cadence.Schedule | None = None,
) -> SyncCounts:
    """Sync the entities asked for (with a `schedule`: only those due), then the deletions stream. Each stream
    read to its end is marked checked (at the schedule's start, else the database's now)."""
    names = list(entities)
    with sessions() as session:
        reconcile = not full and cadence.deletions_stale(session, connection_id, division)
        if schedule is not None and not reconcile:
            due = set(schedule.due(cadence.last_checked(session, connection_id, division)))
            names = [name for name in names if name in due]
    if reconcile:
        log.warning("sync.reconcile", division=division, reason="sync/Deleted last read over 60 days ago")
    total = SyncCounts()
    streams = streams_for(names, reconcile=reconcile)
    following: Enumeration | None = None  # the next stream, opened while the current one's last page is written
    # Opening it failed (a resumed enumeration's first request): raised where it begins, once the current stream
    # is complete, as if the streams had been opened one after the other.
    unopened: Exception | None = None
    try:
        for index, stream in enumerate(streams):
            if unopened is not None:
                raise unopened
            current = following or open_stream(sessions, client, connection_id, division, stream, full=full)
            following = None
            after = streams[index + 1] if index + 1 < len(streams) else None

            def open_following(after: Stream | None = after) -> None:
                nonlocal following, unopened
                if after is not None:
                    try:
                        following = open_stream(sessions, client, connection_id, division, after, full=full)
                    except Exception as exc:
                        unopened = exc

            then = open_following if stream.overlaps_next else None
            total += write_stream(sessions, connection_id, division, current, progress=progress, then=then)
            with sessions.begin() as session:
                cadence.mark_checked(
                    session, connection_id, division, [stream.name], schedule.now if schedule else None
                )
    finally:
        if following is not None:  # the current stream failed after the next one was opened
            following.close()
    return total


@dataclass
class Enumeration:
    """A stream's enumeration as opened: its pages, fetched and prepared ahead of the engine on threads of their
    own (the first is on its way once opened), the highest Timestamp it committed before (a resumed one) and
    whether the stored row holds a resume point."""

    stream: Stream
    pages: Prefetched[Ready]
    pending: int | None
    unfinished: bool

    def __iter__(self) -> Iterator[Ready]:
        try:
            yield from self.pages
        finally:
            self.close()

    def close(self) -> None:
        self.pages.close()


def open_stream(
    sessions: sessionmaker[Session],
    client: PageSource,
    connection_id: int,
    division: int,
    stream: Stream,
    *,
    full: bool = False,
) -> Enumeration:
    """Read the stream's cursor and start its enumeration (continued at its resume point when it has one)."""
    with sessions() as session:
        state = stored_state(session, connection_id, division, stream.name)
    params = stream.params(division, 0 if full else state.timestamp)
    resume_url = None if full or not stream.resumable else state.resume_url
    if resume_url is not None and (state.stale or not _continues(resume_url, division, stream)):
        why = "older than RESUME_MAX_AGE" if state.stale else "not this stream's endpoint and $select"
        log.info("sync.resume_discarded", division=division, stream=stream.name, reason=why)
        resume_url = None  # a fresh enumeration from the cursor; its last page clears the stored resume point
    # The highest Timestamp committed by the enumeration being read (None: nothing yet). A fresh enumeration
    # starts from nothing: it covers everything above its start, whatever an abandoned one had reached.
    pending = state.pending_timestamp if resume_url is not None else None
    unfinished = state.unfinished  # the stored row holds a resume point that the last page must clear
    pages, restarted = _open(sessions, client, connection_id, division, stream, params, resume_url)
    if restarted:
        pending, unfinished = None, False
    ahead = pipelined(pages, stream.prepare, division, f"{division}:{stream.endpoint}")
    return Enumeration(stream, ahead, pending, unfinished)


def write_stream(
    sessions: sessionmaker[Session],
    connection_id: int,
    division: int,
    enumeration: Enumeration,
    *,
    progress: Progress | None = None,
    then: Callable[[], None] | None = None,
) -> SyncCounts:
    """Write each page of an enumeration in its own transaction with its resume point (the last one with the
    cursor). `then` runs once the last page has arrived, before it is written (sync_division opens the next
    stream there: one request in flight, as the last page needs none)."""
    stream, pending, unfinished = enumeration.stream, enumeration.pending, enumeration.unfinished
    counts = SyncCounts()
    for number, ready in enumerate(enumeration, start=1):
        page = ready.page
        rows = page.rows
        if page.next_url is None and then is not None:
            then()  # before the last page's write, so the next request overlaps it
        if not rows and page.next_url is not None:
            continue  # nothing to write; the stored resume point (one page back) is as good
        if not rows and not unfinished:
            continue  # an idle stream: nothing to write and nothing to finish
        with sessions.begin() as session:
            if rows:
                result = _write(session, division, stream, number, ready)
                pending = result.max_timestamp if pending is None else max(pending, result.max_timestamp)
                counts += SyncCounts(result.inserted, result.updated, result.deleted)
            if page.next_url is not None:
                save_progress(session, connection_id, division, stream.name, page.next_url, pending)
            else:
                if stream.finish is not None:
                    counts += SyncCounts(deleted=stream.finish(session, division))
                save_cursor(session, connection_id, division, stream.name, pending or 0)
            if rows:  # last: the feed's lock is held until this commit (see syncs.feed.changes)
                record_change(session, connection_id, division, stream.name, result, pending or 0)
        unfinished = page.next_url is not None
        if progress is not None and rows:
            progress(stream.name, len(rows))
    return counts.of_stream(stream.name)


def _continues(url: str, division: int, stream: Stream) -> bool:
    """Whether a stored d.__next continues this stream as it is now (same division and endpoint, and the same
    $select when the URL names one: after an upgrade that changed the fields, an old enumeration would store
    NULLs for the new ones)."""
    parts = urlsplit(url)
    if not parts.path.lower().endswith(f"/api/v1/{division}/{stream.endpoint}".lower()):
        return False
    selected = parse_qs(parts.query).get("$select")
    return selected is None or selected == [stream.select]


def _open(
    sessions: sessionmaker[Session],
    client: PageSource,
    connection_id: int,
    division: int,
    stream: Stream,
    params: Mapping[str, str],
    resume_url: str | None,
) -> tuple[Iterator[Page], bool]:
    """The pages of the enumeration, continued at `resume_url` when given, and whether that URL was refused.

    The first page is fetched here, before any row is written: when Exact refuses the resume URL (or it is not on
    our host), the resume point is cleared and a fresh enumeration from `params` takes its place.
    """
    if resume_url is None:
        return client.pages(division, stream.endpoint, params), False
    pages = client.pages(division, stream.endpoint, params, resume_url=resume_url)
    try:
        first = next(pages, None)
    except (ExactRequestError, MalformedResponseError) as exc:
        if isinstance(exc, ExactRequestError) and exc.status_code in (401, 403):
            raise  # about access to the division, not this URL: a fresh enumeration would fare no better
        log.warning(
            "sync.resume_refused",
            division=division,
            stream=stream.name,
            resume_url=resume_url,
            error=str(exc),
            fallback=params["$filter"],
        )
        with sessions.begin() as session:
            save_progress(session, connection_id, division, stream.name, None, None)
        return client.pages(division, stream.endpoint, params), True
    return (pages if first is None else chain([first], pages)), False


def _write(session: Session, division: int, stream: Stream, number: int, ready: Ready) -> PageResult:
    where = f"division {division}, {stream.endpoint}, page {number}"
    try:
        if ready.error is not None:
            raise ready.error
        return stream.write(session, division, ready.prepared)
    except MalformedResponseError as exc:
        raise MalformedResponseError(f"{where}: {exc}") from exc
    except DataError as exc:  # a value Postgres refuses (too long for its column, out of range, ...)
        raise MalformedResponseError(f"{where}: a value does not fit its column: {exc.orig}") from exc
