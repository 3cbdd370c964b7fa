"""Per-division call budgets with Exact's headers: daily (resets midnight UTC) and minutely (whole minute)."""

from __future__ import annotations

from dataclasses import dataclass

UNLIMITED = 1_000_000  # what the headers show when limits are off


@dataclass
class _Budget:
    minute: int = -1
    minute_calls: int = 0
    day: int = -1
    day_calls: int = 0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]
    which: str | None = None  # "minutely" or "daily" when refused


class RateLimiter:
    def __init__(self) -> None:
        self._budgets: dict[int, _Budget] = {}

    def take(self, division: int, now: float, minutely: int | None, daily: int | None) -> Verdict:
        """Spend one call of `division`'s budget, or refuse with only the exhausted window's headers."""
        budget = self._budgets.setdefault(division, _Budget())
        minute, day = int(now // 60), int(now // 86400)
        if budget.minute != minute:
            budget.minute, budget.minute_calls = minute, 0
        if budget.day != day:
            budget.day, budget.day_calls = day, 0
        day_limit = daily or UNLIMITED
        minute_limit = minutely or UNLIMITED
        day_reset = str((day + 1) * 86400 * 1000)
        minute_reset = str((minute + 1) * 60 * 1000)
        if daily and budget.day_calls >= daily:
            return Verdict(False, _daily(day_limit, 0, day_reset), "daily")
        if minutely and budget.minute_calls >= minutely:
            return Verdict(False, _minutely(minute_limit, 0, minute_reset), "minutely")
        budget.day_calls += 1
        budget.minute_calls += 1
        headers = _daily(day_limit, max(day_limit - budget.day_calls, 0), day_reset)
        headers.update(_minutely(minute_limit, max(minute_limit - budget.minute_calls, 0), minute_reset))
        return Verdict(True, headers)

    def reset(self) -> None:
        self._budgets.clear()


def minute_window(now: float) -> int:
    """Start (epoch seconds) of the minutely window `now` falls in."""
    return int(now // 60) * 60


def day_window(now: float) -> int:
    return int(now // 86400) * 86400


def burst_headers(now: float, minutely: int | None) -> dict[str, str]:
    """What an injected 429 carries: only minutely headers, resetting at the next whole minute."""
    return _minutely(minutely or UNLIMITED, 0, str((minute_window(now) + 60) * 1000))


def _daily(limit: int, remaining: int, reset: str) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": reset,
    }


def _minutely(limit: int, remaining: int, reset: str) -> dict[str, str]:
    return {
        "X-RateLimit-Minutely-Limit": str(limit),
        "X-RateLimit-Minutely-Remaining": str(remaining),
        "X-RateLimit-Minutely-Reset": reset,
    }
