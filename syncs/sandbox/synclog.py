"""An append-only change log ordered by Timestamp: what a sync endpoint pages through.

Every change appends (timestamp, seq, key). A key's older entries become stale and are skipped when read,
so writes are O(1) and reads bisect straight to `Timestamp gt n`. `seq` is unique and increasing, which makes
it a stable skiptoken even when several rows share one Timestamp (an invoice header bump re-emits all lines).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator


class SyncLog:
    def __init__(self) -> None:
        self._ts: list[int] = []
        self._seq: list[int] = []
        self._keys: list[str] = []
        self._live: dict[str, int] = {}  # key -> seq of its current entry
        self._next_seq = 1

    def __len__(self) -> int:
        return len(self._live)

    def touch(self, key: str, timestamp: int) -> None:
        """Record that `key` now has version `timestamp` (must not be lower than any appended before)."""
        seq = self._next_seq
        self._next_seq += 1
        self._ts.append(timestamp)
        self._seq.append(seq)
        self._keys.append(key)
        self._live[key] = seq
        if len(self._keys) > 1024 and len(self._keys) > 2 * len(self._live):
            self._compact()

    def remove(self, key: str) -> None:
        self._live.pop(key, None)

    def keys(self) -> list[str]:
        return list(self._live)

    def scan(self, after_timestamp: int, after_seq: int = 0) -> Iterator[tuple[int, int, str]]:
        """Live entries (timestamp, seq, key) with Timestamp > after_timestamp and seq > after_seq."""
        start = bisect_right(self._ts, after_timestamp)
        if after_seq:
            start = max(start, bisect_right(self._seq, after_seq))
        live = self._live
        for i in range(start, len(self._keys)):
            key = self._keys[i]
            seq = self._seq[i]
            if live.get(key) == seq:
                yield self._ts[i], seq, key

    def _compact(self) -> None:
        keep = [i for i, key in enumerate(self._keys) if self._live.get(key) == self._seq[i]]
        self._ts = [self._ts[i] for i in keep]
        self._seq = [self._seq[i] for i in keep]
        self._keys = [self._keys[i] for i in keep]
