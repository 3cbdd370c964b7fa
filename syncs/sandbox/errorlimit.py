"""Exact's error limit: more than N 400/401/403/404 per (app key, user, division, endpoint) within an
hour block that endpoint for an hour. The sandbox has one app key and one user, so its key is
(division, endpoint).

Exact says the block grows when errors continue; the sandbox keeps it at one hour.
"""

from __future__ import annotations

from collections import deque

WINDOW = 3600.0
BLOCK = 3600.0
Key = tuple[int, str]


def endpoint_of(path: str) -> str:
    """/api/v1/124132/sync/CRM/Accounts -> sync/crm/accounts; /api/v1/current/Me -> current/me."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    if parts and parts[0].isdigit():
        parts = parts[1:]
    return "/".join(parts).lower()


class ErrorLimit:
    def __init__(self) -> None:
        self._errors: dict[Key, deque[float]] = {}
        self._blocked: dict[Key, float] = {}  # key -> when the block lifts

    def blocked_until(self, key: Key, now: float) -> float | None:
        until = self._blocked.get(key)
        if until is None:
            return None
        if now >= until:
            del self._blocked[key]
            return None
        return until

    def record(self, key: Key, now: float, limit: int | None) -> float | None:
        """Count one error; returns when the block lifts if this error pushed the key over the limit."""
        errors = self._errors.setdefault(key, deque())
        errors.append(now)
        while errors and errors[0] <= now - WINDOW:
            errors.popleft()
        if limit is None or len(errors) <= limit:
            return None
        errors.clear()
        until = now + BLOCK
        self._blocked[key] = until
        return until

    def reset(self) -> None:
        self._errors.clear()
        self._blocked.clear()
