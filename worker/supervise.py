"""`exact-sync worker` keeps a Celery worker running: it runs `celery worker` as a child process and starts it
again when it exits with an error (for example kombu's "Unrecoverable error" after a broker restart), with a
backoff. A clean exit (code 0) or a signal to this process (TERM, INT, QUIT: forwarded to the child) ends it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from syncs.core.settings import Backoff

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


RESTART_BACKOFF = Backoff(1.0, 30.0)  # after quick failures in a row


def supervise(command: Sequence[str], *, backoff: Backoff = RESTART_BACKOFF, healthy_after: float = 60.0) -> int:
    """Run `command` until it exits cleanly or we are told to stop; return its last exit status (128 + N for a
    child ended by signal N, as a shell reports it)."""
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    failures = 0
    try:
        while True:
            started = time.monotonic()
            # Its own session: a Ctrl-C in the terminal reaches the child once, through us.
            child = subprocess.Popen(list(command), start_new_session=True)
            status = child.wait()
            code = 128 - status if status < 0 else status
            if stop.is_set() or code == 0:
                return code
            failures = 1 if time.monotonic() - started >= healthy_after else failures + 1
            delay = backoff.delay(failures)
            print(f"exact-sync worker: celery exited with code {code}; starting it again in {delay:g} s",
                  file=sys.stderr, flush=True)  # fmt: skip
            if stop.wait(delay):
                return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child is not None and child.poll() is None:
            child.terminate()
            child.wait()
