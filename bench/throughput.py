"""Throughput of exact-sync's sync path against the physical limit, fetch only and a naive ORM loader, in one run.

`python -m bench.throughput [--quick] [--accounts N] [--invoices N] [--lines-per-invoice N] [--items N]
[--transaction-lines N] [--vat-codes N] [--page-latency S] [--output FILE]`
(also `exact-sync bench ...`). Steps:

1. A sandbox in a process of its own (bench.sandbox_process; rate limits off, no seed data) gets the data set in
   division 124132, half of it in division 124133 and a little in division 124134 (a warm-up sync, not measured).
2. A fresh database (default `exact_sync_bench`, next to DATABASE_URL's) is migrated, and one connection per
   division is registered with sandbox tokens under an ephemeral Fernet key.
3. Fetch only: every page read and decoded, nothing written (what every loader pays first).
4. exact-sync on the half data set, then on the full one (`worker.runs.execute_sync`, empty tables each time):
   time, API calls and peak RSS growth.
5. Naive loader on a subset: `session.merge` per mapped object, commit per page.
6. map_row + COPY of the same mapped records into unindexed twins of the tables.
7. The physical limit: fetch, then COPY each page's rows as fetched (no mapping, no keys).
8. With the sandbox waiting `--page-latency` seconds (default 0.3) before each answer: fetch only and exact-sync
   on the half data set.
9. With `--memory-records N` (e.g. 1000000): exact-sync once on a data set of about N records, for its peak memory
   growth (goal: under 50 MiB).
10. The write side alone (bench.write_side): the full data set's pages fetched once into memory, then written by
   COPY, by exact-sync's engine and by the naive loader (its subset): load cost beyond fetching, measured directly.

The data set is a mixed catalog (bench.environment.BENCH_ENTITIES): accounts and items through the sync API, sales
invoices (a header/line feed: a row per line), transaction lines (one feed filling two tables: a header row and two
lines per entry) and VAT codes (a snapshot, read whole). A "record" is a row read from the API (the engine also
writes one header per invoice, counted under "rows written"). Every phase is checked against row counts in the
database.

This module is the command line; bench.environment sets up the sandbox, database and connections, bench.run runs
the phases and bench.report renders the result.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.environment import QUICK, BenchmarkError, BenchOptions
from bench.report import render_report
from bench.run import log_to_stderr, run_benchmark
from syncs.core.settings import get_settings


def parse_options(argv: Sequence[str] | None = None) -> tuple[BenchOptions, Path | None]:
    parser = argparse.ArgumentParser(
        prog="exact-sync bench",
        description="Throughput of exact-sync's sync path vs a naive ORM loader and a raw COPY, against a "
        "sandbox in its own process and a fresh database next to DATABASE_URL's.",
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
    parser.add_argument("--items", type=int, help=f"items to generate (default {BenchOptions.items:,})")
    parser.add_argument(
        "--transaction-lines",
        type=int,
        help=f"transaction line rows to generate (default {BenchOptions.transaction_lines:,})",
    )
    parser.add_argument("--vat-codes", type=int, help=f"VAT codes to generate (default {BenchOptions.vat_codes})")
    parser.add_argument("--page-size", type=int, help=f"sandbox page size (default {BenchOptions.page_size})")
    parser.add_argument(
        "--page-latency",
        type=float,
        help=f"seconds per page in the latency phases (default {BenchOptions.page_latency})",
    )
    parser.add_argument(
        "--memory-records",
        type=int,
        help="also sync about this many records once and report its memory growth (e.g. 1000000; default off)",
    )
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
        "items": args.items,
        "transaction_lines": args.transaction_lines,
        "vat_codes": args.vat_codes,
        "page_size": args.page_size,
        "page_latency": args.page_latency,
        "memory_records": args.memory_records,
    }
    options = replace(options, **{name: value for name, value in given.items() if value is not None})
    if options.accounts < 2 or options.invoices < 2 or options.lines_per_invoice < 1 or options.page_size < 1:
        parser.error("need at least 2 accounts, 2 invoices, 1 line per invoice and a page size of 1")
    if options.page_latency < 0:
        parser.error("--page-latency must be 0 or more")
    if min(options.items, options.transaction_lines, options.vat_codes) < 0:
        parser.error("--items, --transaction-lines and --vat-codes must be 0 or more")
    if options.naive_records < 0:
        parser.error("--naive-records must be 0 (all) or more")
    return options, args.output


def main(argv: Sequence[str] | None = None) -> int:
    options, output = parse_options(argv)
    base = get_settings()
    from syncs.core.logging import configure_logging

    configure_logging(base.model_copy(update={"log_level": "WARNING"}))
    try:
        report = run_benchmark(options, base)
    except BenchmarkError as exc:
        log_to_stderr(f"error: {exc}")
        return 1
    rendered = render_report(report)
    print(rendered)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(rendered + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
