"""Exact's time as seen from this machine, estimated from the `Date` header of Exact's answers.

Exact refuses a refresh before its own clock reaches an access token's window (and counts the refused call), so
token windows are kept in Exact's time: a token's `received_at` is the `Date` of the token response (rounded up),
and "now" for a refresh decision is our clock plus a *lower bound* of the offset. Both errors then fall on the
late side: the window never opens early in Exact's time, whichever worker (and clock) decides.

One exchange bounds the offset (Exact's time minus ours): the header was stamped at some moment between sending
and receiving, and it truncates Exact's time to the second, so

    Date - received  <=  offset  <  Date + 1 - sent.

The latest bounds per Exact host and machine live in the Redis hash `{prefix}:clock-offsets` (field
`{host} {machine}`), so every process on a machine uses them before its first own answer, and `status` and
`doctor` show them. Bounds older than `clock_offset_max_age_seconds` are not used (the clock may have been
stepped since); without usable bounds the offset counts as 0, as before the estimate existed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import redis
from redis.exceptions import RedisError

from syncs.core.clock import Clock
from syncs.core.lazy_logger import LazyLogger
from syncs.core.settings import Settings

log = LazyLogger(__name__)


@dataclass(frozen=True)
class OffsetBounds:
    """Exact's clock minus ours lies in [lower, upper), measured at `measured_at` (our clock)."""

    lower: float
    upper: float
    measured_at: float

    @classmethod
    def from_exchange(cls, sent: float, received: float, date_header: str | None) -> OffsetBounds | None:
        stamped = header_time(date_header)
        if stamped is None:
            return None
        return cls(stamped - received, stamped + 1.0 - sent, received)

    def beyond(self, threshold: float) -> bool:
        """Surely more than `threshold` seconds off, in either direction."""
        return self.lower > threshold or self.upper < -threshold

    def describe(self) -> str:
        middle = (self.lower + self.upper) / 2
        return f"clock offset {middle:+.1f} s (Exact's minus ours: {self.lower:+.1f} to {self.upper:+.1f} s)"


def header_time(date_header: str | None) -> float | None:
    """The epoch second of an HTTP `Date` header; None when it is missing or unreadable."""
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class ClockOffsets:
    """The latest bounds per (Exact host, machine) in the Redis hash `{prefix}:clock-offsets`."""

    def __init__(self, client: redis.Redis[Any], prefix: str, machine: str | None = None) -> None:
        self._redis = client
        self.key = f"{prefix}:clock-offsets"
        self.machine = machine or socket.gethostname()

    def save(self, host: str, bounds: OffsetBounds) -> None:
        self._redis.hset(self.key, f"{host} {self.machine}", json.dumps(asdict(bounds)))

    def load(self, host: str) -> OffsetBounds | None:
        raw = self._redis.hget(self.key, f"{host} {self.machine}")
        return _bounds(raw) if raw is not None else None

    def every(self) -> list[tuple[str, str, OffsetBounds]]:
        """(host, machine, bounds) for every machine that measured, sorted."""
        found = []
        for field, raw in self._redis.hgetall(self.key).items():
            host, _, machine = _text(field).rpartition(" ")
            bounds = _bounds(raw)
            if bounds is not None:
                found.append((host, machine, bounds))
        return sorted(found, key=lambda item: (item[0], item[1]))


class ExactTime:
    """Exact's time for one host: what the token refresher decides with and what Exact's answers feed."""

    def __init__(
        self,
        clock: Clock,
        host: str,
        offsets: ClockOffsets | None = None,
        *,
        max_age: float = 3600.0,
        save_every: float = 60.0,
    ) -> None:
        self.clock = clock
        self.host = host
        self._offsets = offsets
        self._max_age = max_age
        self._save_every = save_every
        self._latest: OffsetBounds | None = None  # this process's latest measurement (or what Redis held)
        self._saved_at: float | None = None

    def observe(self, sent: float, received: float, headers: Mapping[str, str], *, save: bool = False) -> None:
        """Take the bounds one answer gives; shared through Redis when `save` or none was shared lately."""
        bounds = OffsetBounds.from_exchange(sent, received, headers.get("Date"))
        if bounds is None:
            return
        self._latest = bounds
        if self._offsets is None:
            return
        if save or self._saved_at is None or received - self._saved_at >= self._save_every:
            try:
                self._offsets.save(self.host, bounds)
            except (RedisError, OSError) as exc:
                log.warning("clock_offset.save_failed", host=self.host, error=str(exc))
                return
            self._saved_at = received

    def bounds(self) -> OffsetBounds | None:
        """The latest usable bounds (ours, or this machine's in Redis when ours are missing or older)."""
        now = self.clock.now()
        latest = self._latest
        if self._offsets is not None and (latest is None or now - latest.measured_at >= self._save_every):
            try:
                shared = self._offsets.load(self.host)
            except (RedisError, OSError) as exc:
                log.warning("clock_offset.load_failed", host=self.host, error=str(exc))
                shared = None
            if shared is not None and (latest is None or shared.measured_at > latest.measured_at):
                latest = self._latest = shared
        if latest is None or now - latest.measured_at > self._max_age:
            return None
        return latest

    def now(self) -> float:
        """Earliest Exact's clock can read now: the moment a refresh window is compared with."""
        bounds = self.bounds()
        return self.clock.now() + (bounds.lower if bounds is not None else 0.0)

    def stamped(self, received: float, headers: Mapping[str, str]) -> float:
        """Latest Exact's clock can have read when it made an answer that arrived at `received` (our clock)."""
        stamped = header_time(headers.get("Date"))
        if stamped is not None:
            return stamped + 1.0  # the header truncates to the second
        bounds = self.bounds()
        return received + (bounds.upper if bounds is not None else 0.0)


def exact_time_for(settings: Settings, redis_client: redis.Redis[Any], clock: Clock, region: str) -> ExactTime:
    """The ExactTime of a region's host, shared through Redis as configured."""
    return ExactTime(
        clock,
        settings.base_url_for(region),
        ClockOffsets(redis_client, settings.redis_key_prefix),
        max_age=settings.clock_offset_max_age_seconds,
        save_every=settings.clock_offset_save_seconds,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bounds(raw: bytes | str) -> OffsetBounds | None:
    try:
        return OffsetBounds(**json.loads(_text(raw)))
    except (TypeError, ValueError):
        return None
