"""`--fail-on-skip`: a skipped test or module fails the run instead (CI: a clone must run every test).

A skip usually means something the test needs is missing (a fixture file, a server binary); on CI that is a
defect of the repository or of `.ci/run`, not a reason to pass. Expected failures (xfail) are left alone.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
from _pytest.reports import CollectReport, TestReport


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fail-on-skip", action="store_true", default=False, help="turn every skip into a failure (used by CI)"
    )


def _fail_skipped(report: CollectReport | TestReport, config: pytest.Config) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and config.getoption("fail_on_skip"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under --fail-on-skip: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, TestReport, TestReport]:
    report = yield
    _fail_skipped(report, item.config)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, CollectReport, CollectReport]:
    report = yield
    _fail_skipped(report, collector.config)
    return report
