"""The tests' clock: syncs.core.clock.ManualClock, moved by hand."""

from __future__ import annotations

from syncs.core.clock import ManualClock

FakeClock = ManualClock
