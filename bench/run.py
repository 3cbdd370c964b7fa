"""The throughput benchmark's run: warm-up, fetch only, exact-sync on the half and the full data set, the naive
loader, the mapped COPY and the physical-limit ceiling, then fetch only and exact-sync again with the sandbox
answering each page after a realistic latency, the optional large run for memory, and last the write side alone of
COPY, exact-sync and the naive loader on the same pages held in memory; each checked against the rows it left in
the database (see bench.throughput)."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from redis import Redis
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from bench.environment import (
    BENCH_ENTITIES,
    DIVISION,
    HALF_CONNECTION,
    HALF_DIVISION,
    MAIN_CONNECTION,
    MEMORY_CONNECTION,
    MEMORY_DIVISION,
    REGION,
    WARMUP_CONNECTION,
    WARMUP_DIVISION,
    BenchmarkError,
    BenchOptions,
    bench_settings,
    count_rows,
    delete_redis_keys,
    drop_database,
    empty_synced_tables,
    expect,
    generate_data,
    memory_sizes,
    records_in,
    register,
    sandbox_config,
)
from bench.loaders import (
    COPY_PREFIX,
    LoadResult,
    StreamClock,
    copy_load,
    create_copy_tables,
    create_raw_tables,
    fetch_only,
    naive_load,
    raw_copy_load,
    raw_records,
    stream_quotas,
)
from bench.memory import MemoryUse, PeakRss
from bench.sandbox_process import SandboxProcess
from bench.write_side import copy_written, engine_written, fetch_all, naive_written
from models.migrate import upgrade_to_head
from syncs.core.db import engine_for, session_factory
from syncs.core.settings import Settings, get_settings
from syncs.exact.client import open_client
from worker.runs import execute_sync

Log = Callable[[str], None]
CEILING = "physical limit: fetch + raw COPY"


@dataclass(frozen=True)
class Phase:
    name: str
    load: LoadResult
    db_records: int  # records found in the database afterwards (bench.environment.RECORD_TABLES)
    memory: MemoryUse | None = None

    @property
    def rate(self) -> float:
        return self.load.records / self.load.seconds if self.load.seconds > 0 else 0.0

    @property
    def calls_per_1000(self) -> float:
        return self.load.api_calls * 1000 / self.load.records if self.load.records else 0.0


@dataclass(frozen=True)
class BenchReport:
    options: BenchOptions
    generate_seconds: float
    postgres_version: str
    load_before: tuple[float, float, float] | None  # 1/5/15-minute load averages when the run began and ended
    load_after: tuple[float, float, float] | None
    fetch: Phase
    exact_half: Phase
    exact: Phase
    naive: Phase
    copy: Phase  # map_row + COPY into unindexed twins
    ceiling: Phase  # the physical limit: fetch + COPY of the rows as fetched
    fetch_slow: Phase  # fetch only, the sandbox answering each page after options.page_latency
    exact_slow: Phase  # exact-sync on the same pages at that latency
    # The write side alone, on the full data set's pages fetched once and held in memory:
    written_copy: Phase  # the physical limit's COPY
    written_exact: Phase  # exact-sync's engine (sync_division on the fetched pages)
    written_naive: Phase  # the naive loader, on its subset
    exact_large: Phase | None = None  # --memory-records: exact-sync on the large data set, for its memory

    @property
    def naive_ratio(self) -> float:
        return self.exact.rate / self.naive.rate if self.naive.rate else 0.0

    @property
    def ceiling_share(self) -> float:
        """exact-sync's records/s as a share of the physical limit's, at zero latency."""
        return self.exact.rate / self.ceiling.rate if self.ceiling.rate else 0.0

    @property
    def latency_share(self) -> float:
        """exact-sync's records/s as a share of fetch-only's, both at the page latency."""
        return self.exact_slow.rate / self.fetch_slow.rate if self.fetch_slow.rate else 0.0

    def fetch_seconds_for(self, records: int) -> float:
        """What fetching `records` costs at the fetch-only rate."""
        return self.fetch.load.seconds * records / self.fetch.load.records if self.fetch.load.records else 0.0

    def load_cost(self, phase: Phase) -> float:
        """Seconds per record beyond fetching (mapping + writing), at zero latency."""
        rest = phase.load.seconds - self.fetch_seconds_for(phase.load.records)
        return max(rest, 1e-9) / phase.load.records if phase.load.records else 0.0

    @property
    def cost_vs_ceiling(self) -> float:
        """exact-sync's write-side seconds per record over COPY's, on the same fetched pages (lower is better)."""
        return _per_record(self.written_exact) / _per_record(self.written_copy)

    @property
    def naive_cost_ratio(self) -> float:
        """The naive loader's write-side seconds per record over exact-sync's (higher is better)."""
        return _per_record(self.written_naive) / _per_record(self.written_exact)

    @property
    def estimated_cost_vs_ceiling(self) -> float:
        """As `cost_vs_ceiling`, estimated from the end-to-end runs by subtracting the fetch-only time."""
        return self.load_cost(self.exact) / self.load_cost(self.ceiling)


def _per_record(phase: Phase) -> float:
    return phase.load.seconds / phase.load.records if phase.load.records else 0.0


def _load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _exact_sync(settings: Settings, sessions: sessionmaker[Session], connection: str, name: str) -> Phase:
    read = 0
    clock = StreamClock()

    def progress(stream: str, count: int) -> None:
        nonlocal read
        read += count
        clock.page_done(stream, count)

    empty_synced_tables(sessions)
    gc.collect()
    with PeakRss() as probe:
        started = time.perf_counter()
        clock.restart()
        outcome = execute_sync(settings, connection, entities=BENCH_ENTITIES, trigger="bench", progress=progress)
        seconds = time.perf_counter() - started
    if outcome.status != "succeeded":
        raise BenchmarkError(f"exact-sync run of {connection} ended {outcome.status}: {outcome.error}")
    load = LoadResult(read, outcome.inserted + outcome.updated, seconds, outcome.api_calls, clock.timings())
    return Phase(name, load, records_in(sessions), probe.result)


def run_benchmark(options: BenchOptions, base: Settings | None = None, log: Log = log_to_stderr) -> BenchReport:
    base = base or get_settings()
    load_before = _load_average()
    config = sandbox_config(options)
    log(
        f"starting the sandbox's process, generating {options.records:,} records ({options.accounts:,} accounts, "
        f"{options.invoices:,} invoices x {options.lines_per_invoice} lines, {options.items:,} items, "
        f"{options.transaction_lines:,} transaction lines, {options.vat_codes:,} VAT codes; plus half of that in "
        f"division {HALF_DIVISION})"
    )
    started = time.perf_counter()
    half_records = options.half_records

    with SandboxProcess(config, partial(generate_data, options=options)) as sandbox:
        generate_seconds = time.perf_counter() - started
        settings = bench_settings(base, sandbox.base_url, options.database, config)
        log(f"creating database {options.database}")
        drop_database(settings.database_url)
        upgrade_to_head(settings.database_url)
        redis_client = Redis.from_url(settings.redis_url)
        try:
            sessions = session_factory(settings.database_url)
            with sessions() as session:
                postgres = str(session.scalar(text("SHOW server_version")))
            main_id = register(sessions, settings, sandbox, MAIN_CONNECTION, DIVISION)
            half_id = register(sessions, settings, sandbox, HALF_CONNECTION, HALF_DIVISION)
            register(sessions, settings, sandbox, WARMUP_CONNECTION, WARMUP_DIVISION)

            log("warm-up sync (not measured)")
            _exact_sync(settings, sessions, WARMUP_CONNECTION, "warm-up")

            log("fetch only")
            with open_client(settings, main_id, REGION, sessions=sessions, redis=redis_client) as client:
                fetched = fetch_only(client, DIVISION)
            expect("fetch only", fetched.records, options.records)
            fetch = Phase("fetch + decode only (no writes)", fetched, 0)

            log(f"exact-sync, half data set ({half_records:,} records)")
            exact_half = _exact_sync(settings, sessions, HALF_CONNECTION, "exact-sync, half data set")
            expect("exact-sync (half)", exact_half.db_records, half_records)
            expect("exact-sync (half) read", exact_half.load.records, half_records)

            log(f"exact-sync, full data set ({options.records:,} records)")
            exact = _exact_sync(settings, sessions, MAIN_CONNECTION, "exact-sync (execute_sync)")
            expect("exact-sync", exact.db_records, options.records)
            expect("exact-sync read", exact.load.records, options.records)
            expect("exact-sync invoice headers", count_rows(sessions, "sales_invoices"), options.invoices)

            empty_synced_tables(sessions)
            quotas = stream_quotas(options.stream_sizes, options.naive_records)
            log(f"naive ORM loader ({sum(quotas):,} records or the pages holding them)")
            with open_client(settings, main_id, REGION, sessions=sessions, redis=redis_client) as client:
                naive_result = naive_load(client, sessions, DIVISION, quotas)
            naive = Phase("naive ORM merge per record", naive_result, records_in(sessions))
            expect("naive loader", naive.db_records, naive_result.records)
            empty_synced_tables(sessions)

            log("raw COPY into unindexed tables")
            create_copy_tables(settings.database_url)
            with open_client(settings, main_id, REGION, sessions=sessions, redis=redis_client) as client:
                copied = copy_load(client, settings.database_url, DIVISION)
            copy = Phase("map_row + COPY, unindexed tables", copied, records_in(sessions, COPY_PREFIX))
            expect("mapped COPY", copy.db_records, options.records)

            log("physical limit: fetch + COPY of the rows as fetched")
            create_raw_tables(settings.database_url)
            with open_client(settings, main_id, REGION, sessions=sessions, redis=redis_client) as client:
                raw = raw_copy_load(client, settings.database_url, DIVISION)
            ceiling = Phase(CEILING, raw, raw_records(settings.database_url))
            expect("physical limit", ceiling.db_records, options.records)

            sandbox.set_latency(options.page_latency)
            log(f"fetch only, {options.page_latency * 1000:.0f} ms per page ({half_records:,} records)")
            with open_client(settings, half_id, REGION, sessions=sessions, redis=redis_client) as client:
                slow = fetch_only(client, HALF_DIVISION)
            expect("fetch only (latency)", slow.records, half_records)
            fetch_slow = Phase(f"fetch only, {options.page_latency * 1000:.0f} ms/page", slow, 0)
            log(f"exact-sync, {options.page_latency * 1000:.0f} ms per page ({half_records:,} records)")
            exact_slow = _exact_sync(
                settings, sessions, HALF_CONNECTION, f"exact-sync, {options.page_latency * 1000:.0f} ms/page"
            )
            expect("exact-sync (latency)", exact_slow.db_records, half_records)

            sandbox.set_latency(0)
            exact_large = None
            if options.memory_records > 0:
                accounts, invoices, lines = memory_sizes(options.memory_records)
                large = accounts + invoices * lines
                log(f"exact-sync, large data set for memory ({large:,} records)")
                register(sessions, settings, sandbox, MEMORY_CONNECTION, MEMORY_DIVISION)
                exact_large = _exact_sync(settings, sessions, MEMORY_CONNECTION, "exact-sync, large data set")
                expect("exact-sync (large)", exact_large.db_records, large)

            # Last: the pages held in memory would leave this process's heap larger for the memory phases.
            log("write side alone: the full data set's pages fetched once, held in memory")
            with open_client(settings, main_id, REGION, sessions=sessions, redis=redis_client) as client:
                in_memory = fetch_all(client, DIVISION, BENCH_ENTITIES)
            expect("fetched pages", in_memory.records, options.records)
            written_copy = Phase("COPY of the rows as fetched", copy_written(in_memory, settings.database_url), 0)
            expect("COPY of fetched pages", written_copy.load.records, options.records)
            empty_synced_tables(sessions)
            gc.collect()
            load = engine_written(in_memory, settings.database_url, main_id, BENCH_ENTITIES)
            written_exact = Phase("exact-sync engine (sync_division)", load, records_in(sessions))
            expect("exact-sync on fetched pages", written_exact.db_records, options.records)
            empty_synced_tables(sessions)
            written_naive = Phase("naive ORM merge per record", naive_written(in_memory, sessions, quotas), 0)
            written_naive = replace(written_naive, db_records=records_in(sessions))
            expect("naive loader on fetched pages", written_naive.db_records, written_naive.load.records)
            empty_synced_tables(sessions)
            del in_memory

        finally:
            delete_redis_keys(redis_client, settings.redis_key_prefix)
            redis_client.close()
            if options.keep_database:
                engine_for(settings.database_url).dispose()
            else:
                drop_database(settings.database_url)

    return BenchReport(
        options,
        generate_seconds,
        postgres,
        load_before,
        _load_average(),
        fetch,
        exact_half,
        exact,
        naive,
        copy,
        ceiling,
        fetch_slow,
        exact_slow,
        written_copy,
        written_exact,
        written_naive,
        exact_large,
    )
