"""Throughput of exact-sync's sync path against a naive ORM loader and a raw COPY, in one run.

`python -m bench.throughput [--quick] [--accounts N] [--invoices N] [--lines-per-invoice N] [--output FILE]`
(also `exact-sync bench ...`). Steps:

1. An in-process sandbox (rate limits off, no seed data) gets the data set in division 124132, half of it in
   division 124133 and a little in division 124134 (a warm-up sync, not measured).
2. A fresh database (default `exact_sync_bench`, next to DATABASE_URL's) is migrated, and one connection per
   division is registered with sandbox tokens under an ephemeral Fernet key.
3. Fetch only: every page read and decoded, nothing written (what every loader pays first).
4. exact-sync on the half data set, then on the full one (`worker.runs.execute_sync`, empty tables each time):
   time, API calls and peak RSS growth.
5. Naive loader on a subset: `session.merge` per mapped object, commit per page.
6. Raw COPY of the same mapped records into unindexed twins of the tables.

A "record" is a row read from the API: an account or an invoice line (the engine also writes one header per
invoice, counted under "rows written"). Every phase is checked against row counts in the database.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bench.loaders import (
    COPY_PREFIX,
    LoadResult,
    StreamClock,
    copy_load,
    create_copy_tables,
    fetch_only,
    naive_load,
    stream_quotas,
)
from bench.memory import MemoryUse, PeakRss
from models.migrate import upgrade_to_head
from syncs.client import open_client
from syncs.clock import SYSTEM_CLOCK
from syncs.connections import add_connection
from syncs.crypto import TokenCipher
from syncs.db import engine_for, session_factory
from syncs.sandbox.seed import FIRST_DIVISION, SECOND_DIVISION
from syncs.sandbox.server import SandboxServer
from syncs.sandbox.state import SandboxConfig, SandboxState
from syncs.settings import Settings, get_settings
from syncs.tokens import TokenPair, TokenStore
from worker.runs import execute_sync

DIVISION = FIRST_DIVISION  # the full data set
HALF_DIVISION = SECOND_DIVISION  # half of it, for the second memory point
WARMUP_DIVISION = SECOND_DIVISION + 1  # a little data to warm every cache up before anything is measured
MAIN_CONNECTION = "bench"
HALF_CONNECTION = "bench-half"
WARMUP_CONNECTION = "bench-warmup"
REGION = "nl"
SYNCED_TABLES = ("accounts", "sales_invoices", "sales_invoice_lines")
MIB = 1024 * 1024

TARGET_NAIVE_RATIO = 10.0
TARGET_COPY_SHARE = 0.30
TARGET_CALLS_PER_1000 = 1.05
PAGE_GROWTH_WARNING = 1.5  # last-tenth / first-tenth page time beyond which the report calls it growth

Log = Callable[[str], None]


class BenchmarkError(RuntimeError):
    """The benchmark could not run or its row counts did not add up."""


@dataclass(frozen=True)
class BenchOptions:
    accounts: int = 20_000
    invoices: int = 25_000
    lines_per_invoice: int = 4
    naive_records: int = 20_000  # records for the naive loader; 0 = all
    page_size: int = 1000  # sandbox page size (Exact's is 1000)
    database: str = "exact_sync_bench"
    keep_database: bool = False

    @property
    def records(self) -> int:
        return self.accounts + self.invoices * self.lines_per_invoice


QUICK = BenchOptions(accounts=2_000, invoices=2_500, lines_per_invoice=4, naive_records=2_000)


@dataclass(frozen=True)
class Phase:
    name: str
    load: LoadResult
    db_records: int  # records found in the database afterwards (accounts + invoice lines)
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
    copy: Phase

    @property
    def naive_ratio(self) -> float:
        return self.exact.rate / self.naive.rate if self.naive.rate else 0.0

    @property
    def copy_share(self) -> float:
        return self.exact.rate / self.copy.rate if self.copy.rate else 0.0

    def fetch_seconds_for(self, records: int) -> float:
        """What fetching `records` costs at the fetch-only rate."""
        return self.fetch.load.seconds * records / self.fetch.load.records if self.fetch.load.records else 0.0


def _load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- setup ---------------------------------------------------------------------------------------------------


def bench_settings(base: Settings, sandbox_url: str, database: str, config: SandboxConfig) -> Settings:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", database):
        raise BenchmarkError(f"unsuitable benchmark database name {database!r}")
    url = make_url(base.database_url).set(database=database).render_as_string(hide_password=False)
    return base.model_copy(
        update={
            "database_url": url,
            "exact_base_url": sandbox_url,
            "exact_client_id": config.client_id,
            "exact_client_secret": SecretStr(config.client_secret),
            "token_encryption_key": SecretStr(Fernet.generate_key().decode()),
            "redis_key_prefix": f"exact-sync-bench-{uuid.uuid4().hex[:8]}",
        }
    )


def _admin_execute(database_url: str, sql: str) -> None:
    admin = create_engine(make_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


def drop_database(database_url: str) -> None:
    engine_for(database_url).dispose()
    _admin_execute(database_url, f'DROP DATABASE IF EXISTS "{make_url(database_url).database}" WITH (FORCE)')


def register(sessions: sessionmaker[Session], settings: Settings, state: SandboxState, name: str, division: int) -> int:
    key = settings.token_encryption_key.get_secret_value() if settings.token_encryption_key else None
    tokens = state.issue_tokens()
    pair = TokenPair(
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        received_at=SYSTEM_CLOCK.now(),
        expires_in=float(tokens["expires_in"]),
    )
    with sessions.begin() as session:
        return add_connection(session, TokenStore(sessions, TokenCipher(key)), name, REGION, pair, division).id


def _count(sessions: sessionmaker[Session], table: str) -> int:
    with sessions() as session:
        return int(session.scalar(text(f'SELECT count(*) FROM "{table}"')) or 0)


def _records_in(sessions: sessionmaker[Session], prefix: str = "") -> int:
    return _count(sessions, f"{prefix}accounts") + _count(sessions, f"{prefix}sales_invoice_lines")


def _empty_synced_tables(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(text(f"TRUNCATE {', '.join(SYNCED_TABLES)}"))
        session.execute(text("DELETE FROM sync_cursors"))


def _expect(what: str, found: int, expected: int) -> None:
    if found != expected:
        raise BenchmarkError(f"{what}: {found} records, expected {expected}")


# -- phases --------------------------------------------------------------------------------------------------


def _exact_sync(settings: Settings, sessions: sessionmaker[Session], connection: str, name: str) -> Phase:
    read = 0
    clock = StreamClock()

    def progress(stream: str, count: int) -> None:
        nonlocal read
        read += count
        clock.page_done(stream, count)

    _empty_synced_tables(sessions)
    gc.collect()
    with PeakRss() as probe:
        started = time.perf_counter()
        clock.restart()
        outcome = execute_sync(settings, connection, trigger="bench", progress=progress)
        seconds = time.perf_counter() - started
    if outcome.status != "succeeded":
        raise BenchmarkError(f"exact-sync run of {connection} ended {outcome.status}: {outcome.error}")
    load = LoadResult(read, outcome.inserted + outcome.updated, seconds, outcome.api_calls, clock.timings())
    return Phase(name, load, _records_in(sessions), probe.result)


def run_benchmark(options: BenchOptions, base: Settings | None = None, log: Log = _stderr) -> BenchReport:
    base = base or get_settings()
    load_before = _load_average()
    config = SandboxConfig(
        minutely_limit=None,
        daily_limit=None,
        seed=False,
        page_size=options.page_size,
        extra_divisions=((WARMUP_DIVISION, "Warm-up"),),
    )
    state = SandboxState(config)
    log(
        f"generating {options.accounts:,} accounts and {options.invoices:,} invoices x "
        f"{options.lines_per_invoice} lines (plus half of that in division {HALF_DIVISION})"
    )
    started = time.perf_counter()
    state.generate(DIVISION, options.accounts, options.invoices, options.lines_per_invoice)
    state.generate(HALF_DIVISION, options.accounts // 2, options.invoices // 2, options.lines_per_invoice)
    state.generate(WARMUP_DIVISION, min(options.accounts, 500), min(options.invoices, 250), options.lines_per_invoice)
    generate_seconds = time.perf_counter() - started
    half_records = options.accounts // 2 + options.invoices // 2 * options.lines_per_invoice

    with SandboxServer(state) as server:
        settings = bench_settings(base, server.base_url, options.database, config)
        log(f"creating database {options.database}")
        drop_database(settings.database_url)
        upgrade_to_head(settings.database_url)
        redis_client = Redis.from_url(settings.redis_url)
        try:
            sessions = session_factory(settings.database_url)
            with sessions() as session:
                postgres = str(session.scalar(text("SHOW server_version")))
            main_id = register(sessions, settings, state, MAIN_CONNECTION, DIVISION)
            register(sessions, settings, state, HALF_CONNECTION, HALF_DIVISION)
            register(sessions, settings, state, WARMUP_CONNECTION, WARMUP_DIVISION)

            log("warm-up sync (not measured)")
            _exact_sync(settings, sessions, WARMUP_CONNECTION, "warm-up")

            log("fetch only")
            with open_client(settings, main_id, REGION, sessions=sessions, redis=redis_client) as client:
                fetched = fetch_only(client, DIVISION)
            _expect("fetch only", fetched.records, options.records)
            fetch = Phase("fetch + decode only (no writes)", fetched, 0)

            log(f"exact-sync, half data set ({half_records:,} records)")
            exact_half = _exact_sync(settings, sessions, HALF_CONNECTION, "exact-sync, half data set")
            _expect("exact-sync (half)", exact_half.db_records, half_records)
            _expect("exact-sync (half) read", exact_half.load.records, half_records)

            log(f"exact-sync, full data set ({options.records:,} records)")
            exact = _exact_sync(settings, sessions, MAIN_CONNECTION, "exact-sync (execute_sync)")
            _expect("exact-sync", exact.db_records, options.records)
            _expect("exact-sync read", exact.load.records, options.records)
            _expect("exact-sync invoice headers", _count(sessions, "sales_invoices"), options.invoices)

            _empty_synced_tables(sessions)
            sizes = [options.accounts, options.invoices * options.lines_per_invoice]
            quotas = stream_quotas(sizes, options.naive_records)
            log(f"naive ORM loader ({sum(quotas):,} records or the pages holding them)")
            with open_client(settings, main_id, REGION, sessions=sessions, redis=redis_client) as client:
                naive_result = naive_load(client, sessions, DIVISION, quotas)
            naive = Phase("naive ORM merge per record", naive_result, _records_in(sessions))
            _expect("naive loader", naive.db_records, naive_result.records)
            _empty_synced_tables(sessions)

            log("raw COPY into unindexed tables")
            create_copy_tables(settings.database_url)
            with open_client(settings, main_id, REGION, sessions=sessions, redis=redis_client) as client:
                copied = copy_load(client, settings.database_url, DIVISION)
            copy = Phase("raw COPY, unindexed tables", copied, _records_in(sessions, COPY_PREFIX))
            _expect("raw COPY", copy.db_records, options.records)
        finally:
            keys = list(redis_client.scan_iter(match=f"{settings.redis_key_prefix}*"))
            if keys:
                redis_client.delete(*keys)
            redis_client.close()
            if options.keep_database:
                engine_for(settings.database_url).dispose()
            else:
                drop_database(settings.database_url)

    return BenchReport(
        options, generate_seconds, postgres, load_before, _load_average(), fetch, exact_half, exact, naive, copy
    )


# -- report --------------------------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _loads(loads: tuple[float, float, float] | None) -> str:
    return "/".join(f"{value:.2f}" for value in loads) if loads else "unknown"


def _mib(value: int) -> str:
    return f"{value / MIB:,.1f} MiB"


def _stream_lines(report: BenchReport) -> list[str]:
    """Per stream: rates, and page times early vs late in the stream (a rise means cost grows with the table)."""
    lines = [
        "per stream: records/s, and ms per page (fetch + write) averaged over the first and the last tenth of the "
        "stream's pages",
        f"{'method':<34}{'stream':<16}{'records':>10}{'records/s':>12}{'first ms':>10}{'last ms':>10}"
        f"{'last/first':>12}",
    ]
    growth: list[str] = []
    for phase in (report.fetch, report.exact, report.naive, report.copy):
        for stream in phase.load.streams:
            first, last = stream.page_ms(first=True), stream.page_ms(first=False)
            ratio = last / first if first > 0 else 0.0
            lines.append(
                f"{phase.name:<34}{stream.name:<16}{stream.records:>10,}{stream.rate:>12,.0f}{first:>10.0f}"
                f"{last:>10.0f}{ratio:>11.2f}x"
            )
            if phase is report.exact and ratio > PAGE_GROWTH_WARNING and len(stream.pages) >= 10:
                growth.append(f"{stream.name} {ratio:.1f}x")
    if growth:
        lines.append(
            f"exact-sync's page time rises along the stream ({', '.join(growth)}): its per-page cost grows with "
            "the table, so its rate falls as the data set grows."
        )
    return lines


def render_report(report: BenchReport) -> str:
    o = report.options
    lines = [
        "exact-sync throughput benchmark",
        f"python {platform.python_version()}, PostgreSQL {report.postgres_version}, {platform.machine()}, "
        f"sandbox in process (same interpreter, rate limits off, page size {o.page_size})",
        f"data: division {DIVISION}: {o.accounts:,} accounts + {o.invoices:,} invoices x {o.lines_per_invoice} "
        f"lines = {o.invoices * o.lines_per_invoice:,} invoice lines -> {o.records:,} records "
        f"(generated in {report.generate_seconds:.1f} s)",
        f"machine: {os.cpu_count()} CPUs, load average {_loads(report.load_before)} at start, "
        f"{_loads(report.load_after)} at the end (other work on the machine slows every method alike, roughly)",
        "a record = a row read from the API (an account or an invoice line); exact-sync also writes one header "
        "per invoice",
        "",
    ]
    header = (
        f"{'method':<34}{'records':>10}{'seconds':>10}{'records/s':>12}{'API calls':>11}"
        f"{'calls/1k':>10}{'rows written':>14}{'records/s excl. fetch':>23}"
    )
    lines += [header, "-" * len(header)]
    for phase in (report.fetch, report.exact, report.exact_half, report.naive, report.copy):
        load = phase.load
        if phase is report.fetch:
            beyond = "-"
        else:
            rest = load.seconds - report.fetch_seconds_for(load.records)
            beyond = f"{load.records / rest:,.0f}" if rest > 0 else "n/a"
        lines.append(
            f"{phase.name:<34}{load.records:>10,}{load.seconds:>10.2f}{phase.rate:>12,.0f}{load.api_calls:>11,}"
            f"{phase.calls_per_1000:>10.3f}{load.rows_written:>14,}{beyond:>23}"
        )
    naive_scope = (
        "all records"
        if report.naive.load.records >= o.records
        else f"a subset: the first {report.naive.load.records:,} of {o.records:,} records, accounts and invoice "
        "lines in proportion, whole pages"
    )
    lines += [
        "",
        f"naive loader ran on {naive_scope}; rates (records/s) are compared, not totals.",
        "records/s excl. fetch: records / (seconds - the fetch-only time for as many records), an estimate of the "
        "mapping + database side alone.",
        "raw COPY: fetch + the same mapping + COPY per page (one transaction each) into tables without keys or "
        "indexes: the ceiling.",
        "",
        f"{'ratio':<48}{'value':>10}{'target':>12}{'':>4}result",
    ]
    calls = report.exact.calls_per_1000
    ratios = (
        ("exact-sync / naive ORM merge (records/s)", f"{report.naive_ratio:.1f}x", f">= {TARGET_NAIVE_RATIO:.0f}x",
         report.naive_ratio >= TARGET_NAIVE_RATIO),
        ("exact-sync / raw COPY (records/s)", f"{report.copy_share:.0%}", f">= {TARGET_COPY_SHARE:.0%}",
         report.copy_share >= TARGET_COPY_SHARE),
        ("exact-sync API calls per 1,000 records", f"{calls:.3f}", f"<= {TARGET_CALLS_PER_1000}",
         calls <= TARGET_CALLS_PER_1000),
    )  # fmt: skip
    for label, value, target, met in ratios:
        lines.append(f"{label:<48}{value:>10}{target:>12}{'':>4}{_verdict(met)}")

    lines += ["", *_stream_lines(report)]

    half, full = report.exact_half, report.exact
    assert half.memory is not None and full.memory is not None
    lines += [
        "",
        f"memory: peak RSS growth of this process during an exact-sync run, over its RSS when the run began "
        f"({full.memory.method}; includes the in-process sandbox serving the pages)",
        f"{'data set':<34}{'records':>10}{'RSS at start':>16}{'peak RSS':>14}{'peak growth':>14}",
    ]
    for label, phase in (("half", half), ("full", full)):
        memory = phase.memory
        assert memory is not None
        lines.append(
            f"{label:<34}{phase.load.records:>10,}{_mib(memory.baseline):>16}{_mib(memory.peak):>14}"
            f"{_mib(memory.growth):>14}"
        )
    record_ratio = full.load.records / half.load.records if half.load.records else 0.0
    grows = full.memory.growth > 1.5 * half.memory.growth and full.memory.growth - half.memory.growth > 8 * MIB
    lines.append(
        f"{record_ratio:.2f}x the records -> {_mib(full.memory.growth - half.memory.growth)} more peak growth: "
        + ("memory GROWS with the number of records" if grows else "memory does not grow with the number of records")
    )
    return "\n".join(lines)


# -- command line --------------------------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None = None) -> tuple[BenchOptions, Path | None]:
    parser = argparse.ArgumentParser(
        prog="exact-sync bench",
        description="Throughput of exact-sync's sync path vs a naive ORM loader and a raw COPY, against an "
        "in-process sandbox and a fresh database next to DATABASE_URL's.",
    )
    parser.add_argument("--accounts", type=int, help=f"accounts to generate (default {BenchOptions.accounts:,})")
    parser.add_argument("--invoices", type=int, help=f"invoices to generate (default {BenchOptions.invoices:,})")
    parser.add_argument(
        "--lines-per-invoice", type=int, help=f"lines per invoice (default {BenchOptions.lines_per_invoice})"
    )
    parser.add_argument(
        "--naive-records",
        type=int,
        help=f"records for the naive loader, 0 = all (default {BenchOptions.naive_records:,})",
    )
    parser.add_argument("--page-size", type=int, help=f"sandbox page size (default {BenchOptions.page_size})")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--database", default=BenchOptions.database, help="benchmark database (dropped first)")
    parser.add_argument("--keep-database", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    options = replace(QUICK if args.quick else BenchOptions(), database=args.database, keep_database=args.keep_database)
    given = {
        "accounts": args.accounts,
        "invoices": args.invoices,
        "lines_per_invoice": args.lines_per_invoice,
        "naive_records": args.naive_records,
        "page_size": args.page_size,
    }
    options = replace(options, **{name: value for name, value in given.items() if value is not None})
    if options.accounts < 2 or options.invoices < 2 or options.lines_per_invoice < 1 or options.page_size < 1:
        parser.error("need at least 2 accounts, 2 invoices, 1 line per invoice and a page size of 1")
    if options.naive_records < 0:
        parser.error("--naive-records must be 0 (all) or more")
    return options, args.output


def main(argv: Sequence[str] | None = None) -> int:
    options, output = parse_options(argv)
    base = get_settings()
    from syncs.logging import configure_logging

    configure_logging(base.model_copy(update={"log_level": "WARNING"}))
    try:
        report = run_benchmark(options, base)
    except BenchmarkError as exc:
        _stderr(f"error: {exc}")
        return 1
    rendered = render_report(report)
    print(rendered)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(rendered + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
