"""A sandbox whose clock is off ours: its Date header and its token window run on its own clock, as Exact's do."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from syncs.exact.exact_time import OffsetBounds
from syncs.sandbox.server import SandboxServer
from tests.sandbox.test_tokens import me, refresh
from tests.support.clock import FakeClock
from tests.support.net import free_port
from tests.worker.conftest import wait_for

SKEW = -20.0
EXACT_SYNC = str(Path(sys.executable).with_name("exact-sync"))


def test_every_answer_carries_one_date_header_from_the_sandbox_clock(
    make_sandbox: Callable[..., SandboxServer], clock: FakeClock
) -> None:
    sandbox = make_sandbox(clock_offset_seconds=SKEW)
    for response in (
        me(sandbox, "unknown-token"),  # a 401
        refresh(sandbox, "unknown-refresh-token"),  # the token endpoint's refusal
        httpx.get(f"{sandbox.base_url}/api/v1/nowhere"),  # Exact's 404
    ):
        dates = response.headers.get_list("date")
        assert len(dates) == 1, dates  # uvicorn's own Date (the real clock) is off
        assert parsedate_to_datetime(dates[0]).timestamp() == clock.now() + SKEW
    httpx.post(f"{sandbox.base_url}/sandbox/config", json={"clock_offset_seconds": 5})
    assert parsedate_to_datetime(me(sandbox, "x").headers["date"]).timestamp() == clock.now() + 5


def test_the_refresh_window_follows_the_sandbox_clock(
    make_sandbox: Callable[..., SandboxServer], clock: FakeClock
) -> None:
    """Issued at our T (its T-20): its window opens at its T+550, our T+570; before that, 401 as Exact does."""
    sandbox = make_sandbox(clock_offset_seconds=SKEW)
    pair = sandbox.state.issue_tokens()
    clock.advance(569)
    early = refresh(sandbox, pair["refresh_token"])
    assert early.status_code == 401
    assert early.json()["error_description"] == "Access token not expired"
    assert sandbox.state.counters.token_refresh_refused_early == 1
    clock.advance(1)
    assert refresh(sandbox, pair["refresh_token"]).status_code == 200


def test_a_skew_set_after_issue_moves_the_window(make_sandbox: Callable[..., SandboxServer], clock: FakeClock) -> None:
    """Exact's clock runs behind from now on: a refresh that was on time by ours is early by its clock."""
    sandbox = make_sandbox()
    pair = sandbox.state.issue_tokens()
    clock.advance(575)
    sandbox.state.configure(clock_offset_seconds=SKEW)
    assert refresh(sandbox, pair["refresh_token"]).status_code == 401
    clock.advance(-SKEW)
    assert refresh(sandbox, pair["refresh_token"]).status_code == 200


def test_the_sandbox_command_runs_a_skewed_clock() -> None:
    """`exact-sync sandbox --clock-offset -20`: the Date header of its answers is 20 s behind this machine's."""
    port = free_port()
    process = subprocess.Popen(
        [EXACT_SYNC, "sandbox", "--port", str(port), "--clock-offset", str(SKEW)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answered() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/current/Me", timeout=2)
            except httpx.TransportError:
                return None

        sent = time.time()
        response = wait_for(answered, timeout=30)
        received = time.time()
    finally:
        process.terminate()
        process.wait(10)
    assert isinstance(response, httpx.Response) and response.status_code == 401
    bounds = OffsetBounds.from_exchange(sent, received, response.headers.get("date"))
    assert bounds is not None and bounds.lower <= SKEW < bounds.upper, bounds
