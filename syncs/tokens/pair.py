"""The token pair Exact hands out, as we keep it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TokenPair:
    access_token: str | None = field(repr=False)
    refresh_token: str = field(repr=False)
    received_at: float | None  # Exact's clock, when it answered (its Date header, rounded up)
    expires_in: float | None

    def refreshable_at(self, window: float, margin: float) -> float | None:
        """Earliest moment we may refresh (Exact's window plus our margin); None when the age is unknown."""
        if self.received_at is None or self.expires_in is None:
            return None
        return self.received_at + self.expires_in - window + margin
