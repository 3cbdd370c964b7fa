"""`exact-sync worker` keeps celery running: a crash is followed by a new start, a signal ends both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from syncs.core.settings import Backoff
from tests.worker.conftest import wait_for

SUPERVISE = (
    "import sys; from syncs.core.settings import Backoff; from worker.supervise import supervise; "
    "sys.exit(supervise(sys.argv[1:], backoff=Backoff(0.05, 30.0)))"
)
ROOT = Path(__file__).resolve().parents[2]


def run_supervised(*command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, *command],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_child_that_fails_is_started_again_until_it_exits_cleanly(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    # Fails twice (as celery does after an unrecoverable broker error), then exits cleanly.
    child = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]); n = len(p.read_text()) if p.exists() else 0; "
        "p.write_text('x' * (n + 1)); sys.exit(0 if n >= 2 else 3)"
    )
    process = run_supervised(sys.executable, "-c", child, str(starts))
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert starts.read_text() == "xxx"
    assert err.count("celery exited with code 3; starting it again") == 2


def test_a_signal_stops_the_child_and_the_supervisor(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    child = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(60)"
    process = run_supervised(sys.executable, "-c", child)
    wait_for(pid_file.exists, timeout=30)
    child_pid = int(pid_file.read_text())
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 128 + signal.SIGTERM  # the child's own end, passed on
    time.sleep(0.1)
    try:
        os.kill(child_pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the child outlived its supervisor")


def test_restart_delay_doubles_and_is_capped() -> None:
    assert [Backoff(1.0, 30.0).delay(n) for n in (0, 1, 2, 3, 6, 50)] == [0.0, 1.0, 2.0, 4.0, 30.0, 30.0]
