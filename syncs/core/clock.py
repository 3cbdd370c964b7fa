"""The one source of time, injectable so token windows and rate resets are tested without sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ShiftedClock:
    """Another clock read `offset()` seconds later (negative: earlier): a machine whose clock is off."""

    def __init__(self, inner: Clock, offset: Callable[[], float]) -> None:
        self._inner = inner
        self._offset = offset

    def now(self) -> float:
        return self._inner.now() + self._offset()

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class ManualClock:
    """A clock moved by hand (tests, benchmarks that simulate days); `sleep` advances it at once, so waits for token
    windows and rate resets cost nothing."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self._now += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def to_datetime(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


SYSTEM_CLOCK: Clock = SystemClock()
