"""The throughput benchmark end to end with tiny sizes: it runs, counts every record, and prints its table.

No timing is asserted: rates on a shared test machine say nothing.
"""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.environment import BENCH_ENTITIES, BenchOptions
from bench.report import render_report
from bench.run import run_benchmark
from bench.throughput import parse_options
from syncs.core.settings import Settings
from tests.conftest import ADMIN_URL, REDIS_URL

OPTIONS = BenchOptions(
    accounts=130,
    invoices=55,
    lines_per_invoice=3,
    naive_records=120,
    page_size=40,
    database="unused",
    page_latency=0.01,
    memory_records=500,
    items=30,
    transaction_lines=30,  # 10 entries: a header row and two lines each
    vat_codes=10,
)
MIX = 30 + 30 + 10


def _database_exists(name: str) -> bool:
    engine = create_engine(ADMIN_URL)
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}))
    finally:
        engine.dispose()


def test_tiny_benchmark_counts_every_record_and_prints_the_table() -> None:
    database = f"exact_sync_bench_smoke_{uuid.uuid4().hex[:8]}"
    options = BenchOptions(**{**OPTIONS.__dict__, "database": database})
    base = Settings(
        _env_file=None,
        database_url=make_url(ADMIN_URL).render_as_string(hide_password=False),
        redis_url=REDIS_URL,
    )
    messages: list[str] = []

    report = run_benchmark(options, base, log=messages.append)

    records = 130 + 55 * 3 + MIX
    assert options.records == records
    assert report.fetch.load.records == records
    assert report.exact.load.records == records
    assert report.exact.db_records == records
    assert report.exact.load.rows_written == records + 55  # one header per invoice
    # Every entity of the mix was read by every loader, each in its own stream.
    for phase in (report.fetch, report.exact, report.ceiling, report.copy, report.written_exact):
        assert [stream.name for stream in phase.load.streams] == list(BENCH_ENTITIES), phase.name
    half = 65 + 27 * 3 + MIX // 2
    assert report.exact_half.load.records == half
    assert report.exact_half.db_records == half
    assert report.copy.load.records == records
    assert report.copy.db_records == records
    assert report.ceiling.load.records == report.ceiling.db_records == records
    assert report.fetch_slow.load.records == half
    assert report.exact_slow.load.records == report.exact_slow.db_records == half
    # The naive loader stops after the pages holding its share of 120 records, so it read a subset.
    assert 120 <= report.naive.load.records < records
    assert report.naive.db_records == report.naive.load.records

    # The write side alone, on the same pages held in memory: every record written by COPY and by the engine
    # (headers too), the naive loader on its subset; nothing fetched in these phases.
    assert report.written_copy.load.records == report.written_copy.load.rows_written == records
    assert report.written_exact.load.records == report.written_exact.db_records == records
    assert report.written_exact.load.rows_written == records + 55
    assert 120 <= report.written_naive.load.records == report.written_naive.db_records < records
    for phase in (report.written_copy, report.written_exact, report.written_naive):
        assert phase.load.api_calls == 0 and phase.load.seconds > 0

    pages = math.ceil(130 / 40) + math.ceil(55 * 3 / 40) + 3  # the mix: a page each
    assert report.copy.load.api_calls == pages  # the mapped entity streams
    # What a run reads: every page, and sync/Deleted (one page).
    assert report.fetch.load.api_calls == report.ceiling.load.api_calls == pages + 1
    # The same, plus a few bookkeeping calls (divisions, Me).
    assert pages + 1 <= report.exact.load.api_calls <= pages + 5
    phases = (report.fetch, report.exact, report.exact_half, report.naive, report.copy, report.ceiling)
    for phase in (*phases, report.fetch_slow, report.exact_slow):
        assert phase.load.seconds > 0
        assert phase.rate > 0
    assert report.exact_large is not None and report.exact_large.db_records == 100 + 100 * 4
    for phase in (report.exact, report.exact_half, report.exact_large):
        assert phase.memory is not None
        assert phase.memory.peak >= phase.memory.baseline > 0
    assert report.naive_ratio > 0
    assert report.ceiling_share > 0 and report.latency_share > 0
    assert report.cost_vs_ceiling > 0 and report.naive_cost_ratio > 0
    # The latency phase waited for every page: fetching alone took at least pages x latency.
    half_pages = math.ceil(65 / 40) + math.ceil(27 * 3 / 40) + 3
    assert report.fetch_slow.load.seconds >= half_pages * 0.01

    table = render_report(report)
    for expected in (
        "exact-sync (execute_sync)",
        "naive ORM merge per record",
        "map_row + COPY, unindexed tables",
        "write side alone",
        "exact-sync engine (sync_division)",
        "sandbox in a process of its own",
        "physical limit: fetch + raw COPY",
        "exact-sync / physical limit",
        "exact-sync / fetch only",
        "naive ORM / exact-sync",
        "API calls per 1,000 records",
        "peak growth",
        f"{records:,}",
        "naive loader ran on a subset",
        "large data set: 500 records",
    ):
        assert expected in table
    assert messages  # progress went to the log callable
    assert not _database_exists(database)  # dropped afterwards


def test_quick_and_explicit_sizes() -> None:
    options, output = parse_options(["--quick", "--invoices", "10", "--database", "x_bench"])
    assert (options.accounts, options.invoices, options.database, output) == (2000, 10, "x_bench", None)
    options, _ = parse_options([])
    assert options.records == 120_000 + 4_000 + 12_000 + 100
    with pytest.raises(SystemExit):
        parse_options(["--accounts", "1"])
