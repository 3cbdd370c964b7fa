"""The throughput benchmark's report: the table of methods, the target ratios, per-stream page times and memory."""

from __future__ import annotations

import os
import platform

from bench.environment import DIVISION
from bench.run import BenchReport

MIB = 1024 * 1024

TARGET_NAIVE_RATIO = 10.0
TARGET_COPY_SHARE = 0.30
TARGET_CALLS_PER_1000 = 1.05
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
