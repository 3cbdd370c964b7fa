"""The throughput benchmark's report: the table of methods, the target ratios, per-stream page times and memory."""

from __future__ import annotations

import os
import platform

from bench.environment import DIVISION, HALF_DIVISION
from bench.run import BenchReport, Phase

MIB = 1024 * 1024

TARGET_CEILING_SHARE = 0.85
TARGET_LATENCY_SHARE = 0.95
TARGET_COST_VS_CEILING = 2.0
TARGET_NAIVE_COST_RATIO = 15.0
TARGET_CALLS_PER_1000 = 1.05
TARGET_MEMORY_GROWTH = 50 * 1024 * 1024
PAGE_GROWTH_WARNING = 1.5  # last-tenth / first-tenth page time beyond which the report calls it growth


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
    for phase in (report.fetch, report.ceiling, report.exact, report.copy, report.naive, report.exact_slow):
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


def _phase_line(report: BenchReport, phase: Phase, excl_fetch: bool) -> str:
    load = phase.load
    beyond = f"{1 / report.load_cost(phase):,.0f}" if excl_fetch else "-"
    return (
        f"{phase.name:<34}{load.records:>10,}{load.seconds:>10.2f}{phase.rate:>12,.0f}{load.api_calls:>11,}"
        f"{phase.calls_per_1000:>10.3f}{load.rows_written:>14,}{beyond:>23}"
    )


def render_report(report: BenchReport) -> str:
    o = report.options
    lines = [
        "exact-sync throughput benchmark",
        f"python {platform.python_version()}, PostgreSQL {report.postgres_version}, {platform.machine()}, "
        f"sandbox in a process of its own (as Exact is a remote server; rate limits off, page size {o.page_size})",
        f"data: division {DIVISION}: {o.accounts:,} accounts (sync API) + {o.invoices:,} invoices x "
        f"{o.lines_per_invoice} lines = {o.invoices * o.lines_per_invoice:,} invoice lines (header/line feed) + "
        f"{o.items:,} items (sync API) + {o.transaction_lines:,} transaction lines (one feed, two tables) + "
        f"{o.vat_codes:,} VAT codes (snapshot) -> {o.records:,} records "
        f"(sandbox started and data generated in {report.generate_seconds:.1f} s)",
        f"machine: {os.cpu_count()} CPUs, load average {_loads(report.load_before)} at start, "
        f"{_loads(report.load_after)} at the end (other work on the machine slows every method alike, roughly)",
        "a record = a row read from the API (an account, an invoice line, an item, a transaction line or header "
        "row, a VAT code); exact-sync also writes one header per invoice",
        "",
    ]
    header = (
        f"{'method':<34}{'records':>10}{'seconds':>10}{'records/s':>12}{'API calls':>11}"
        f"{'calls/1k':>10}{'rows written':>14}{'records/s excl. fetch':>23}"
    )
    lines += ["at zero latency (the sandbox answers at once):", header, "-" * len(header)]
    for phase in (report.fetch, report.ceiling, report.exact, report.exact_half, report.copy, report.naive):
        lines.append(_phase_line(report, phase, excl_fetch=phase is not report.fetch))
    lines += [
        "",
        f"at {o.page_latency * 1000:.0f} ms per page (the sandbox waits that long before each answer; "
        f"division {HALF_DIVISION}, the half data set):",
    ]
    for phase in (report.fetch_slow, report.exact_slow):
        lines.append(_phase_line(report, phase, excl_fetch=False))
    lines += [
        "",
        f"write side alone (division {DIVISION}'s pages fetched once and held in memory, then written; one "
        "transaction per page each):",
        f"{'method':<34}{'records':>10}{'seconds':>10}{'records/s':>12}{'us/record':>11}{'rows written':>14}",
    ]
    for phase in (report.written_copy, report.written_exact, report.written_naive):
        load = phase.load
        lines.append(
            f"{phase.name:<34}{load.records:>10,}{load.seconds:>10.2f}{phase.rate:>12,.0f}"
            f"{1e6 * load.seconds / max(load.records, 1):>11.1f}{load.rows_written:>14,}"
        )
    naive_scope = (
        "all records"
        if report.naive.load.records >= o.records
        else f"a subset: the first {report.naive.load.records:,} of {o.records:,} records, each entity's share in "
        "proportion to its size, whole pages (at least one page each)"
    )
    lines += [
        "",
        f"naive loader ran on {naive_scope}; rates (records/s) are compared, not totals.",
        "records/s excl. fetch: records / (seconds - the fetch-only time for as many records), an estimate of the "
        "mapping + database side alone; the write-side table measures it directly (the ratios below use that).",
        "fetch only and the physical limit read every page a run reads, sync/Deleted included (the same requests "
        "as exact-sync).",
        "physical limit: fetch each page, then COPY its rows as fetched (a text column per selected field + the row "
        "as jsonb) into a table without keys or indexes, one transaction per page: no mapping, no upsert, no "
        "overlap of fetching and writing. exact-sync fetches page N+2 and prepares page N+1 while it writes page N "
        "(one request in flight), so end to end it can come near the longest of the three instead of their sum.",
        "map_row + COPY: the physical limit plus exact-sync's mapping (the entity writers' records) into unindexed "
        "twins of the synced tables: the difference is what mapping costs.",
        "",
        f"{'ratio':<66}{'value':>10}{'target':>12}{'':>4}result",
    ]
    calls = report.exact.calls_per_1000
    ratios = (
        ("end to end, zero latency: exact-sync / physical limit (records/s)", f"{report.ceiling_share:.0%}",
         f">= {TARGET_CEILING_SHARE:.0%}", report.ceiling_share >= TARGET_CEILING_SHARE),
        (f"end to end, {o.page_latency * 1000:.0f} ms/page: exact-sync / fetch only (records/s)",
         f"{report.latency_share:.0%}", f">= {TARGET_LATENCY_SHARE:.0%}", report.latency_share >= TARGET_LATENCY_SHARE),
        ("load cost beyond fetching (write side): exact-sync / COPY", f"{report.cost_vs_ceiling:.1f}x",
         f"<= {TARGET_COST_VS_CEILING:.0f}x", report.cost_vs_ceiling <= TARGET_COST_VS_CEILING),
        ("load cost beyond fetching (write side): naive ORM / exact-sync", f"{report.naive_cost_ratio:.1f}x",
         f">= {TARGET_NAIVE_COST_RATIO:.0f}x", report.naive_cost_ratio >= TARGET_NAIVE_COST_RATIO),
        ("  the same, estimated from the end-to-end runs minus fetch time",
         f"{report.estimated_cost_vs_ceiling:.1f}x", "", None),
        ("end to end, zero latency: exact-sync / naive ORM merge (records/s)", f"{report.naive_ratio:.1f}x", "", None),
        ("exact-sync API calls per 1,000 records", f"{calls:.3f}", f"<= {TARGET_CALLS_PER_1000}",
         calls <= TARGET_CALLS_PER_1000),
    )  # fmt: skip
    for label, value, target, met in ratios:
        lines.append(f"{label:<66}{value:>10}{target:>12}{'':>4}{'' if met is None else _verdict(met)}")

    lines += ["", *_stream_lines(report)]

    half, full = report.exact_half, report.exact
    assert half.memory is not None and full.memory is not None
    lines += [
        "",
        f"memory: peak RSS growth of this process during an exact-sync run, over its RSS when the run began "
        f"({full.memory.method}; the sandbox holding the data set is another process)",
        f"{'data set':<34}{'records':>10}{'RSS at start':>16}{'peak RSS':>14}{'peak growth':>14}",
    ]
    measured = [("half", half), ("full", full)] + ([("large", report.exact_large)] if report.exact_large else [])
    for label, phase in measured:
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
    large = report.exact_large
    if large is not None and large.memory is not None:
        growth = large.memory.growth
        lines.append(
            f"large data set: {large.load.records:,} records, peak growth {_mib(growth)} (target < "
            f"{_mib(TARGET_MEMORY_GROWTH)}): {_verdict(growth < TARGET_MEMORY_GROWTH)}"
        )
    return "\n".join(lines)
