"""Peak resident memory of this process over a block of code, relative to the RSS when the block began.

On Linux the kernel's high-water mark (VmHWM) is reset to the current RSS by writing "5" to
/proc/self/clear_refs, so the peak is exact and nothing runs beside the measured code; when the reset is refused,
a thread samples the RSS instead (it competes for the GIL with the code it measures). Elsewhere
`resource.getrusage` gives the process-lifetime maximum, which only shows growth beyond the highest point reached
so far.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = Path("/proc/self/statm")
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class MemoryUse:
    baseline: int  # bytes resident when the block began
    peak: int  # highest bytes resident during the block
    method: str

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)


def current_rss() -> int | None:
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def _high_water_mark() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        return None
    return None


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _lifetime_max_rss() -> int:
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024  # bytes on macOS, KiB on Linux


class PeakRss:
    """`with PeakRss() as probe: ...` then `probe.result`."""

    def __init__(self, interval: float = 0.005) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = 0
        self._sampled = 0
        self._hwm_reset = False
        self._result: MemoryUse | None = None

    @property
    def result(self) -> MemoryUse:
        if self._result is None:
            raise RuntimeError("the block has not ended yet")
        return self._result

    def __enter__(self) -> PeakRss:
        rss = current_rss()
        if rss is None:  # no /proc: the lifetime maximum is all there is
            self._baseline = _lifetime_max_rss()
            return self
        self._baseline = self._sampled = rss
        self._hwm_reset = _reset_high_water_mark()
        if not self._hwm_reset:  # a sampling thread would compete for the GIL with what it measures: only if needed
            self._thread = threading.Thread(target=self._sample, name="bench-rss", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            rss = current_rss()
            if rss is not None and rss > self._sampled:
                self._sampled = rss

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        hwm = _high_water_mark() if self._hwm_reset else None
        if hwm is not None:
            self._result = MemoryUse(self._baseline, max(self._baseline, hwm), "VmHWM (reset at start)")
            return
        if self._thread is None:
            self._result = MemoryUse(self._baseline, max(self._baseline, _lifetime_max_rss()), "getrusage maxrss")
            return
        self._stop.set()
        self._thread.join()
        self._result = MemoryUse(self._baseline, self._sampled, "RSS sampled every 5 ms")
