"""Exact's `/Date(ms)/` values: Europe/Amsterdam wall-clock time written as if it were UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def exact_datetime(epoch_seconds: float) -> str:
    """An instant as Exact sends it: the Amsterdam local time, labelled as UTC milliseconds."""
    local = datetime.fromtimestamp(epoch_seconds, tz=AMSTERDAM)
    wall = local.replace(tzinfo=UTC)
    return f"/Date({int(wall.timestamp() * 1000)})/"


def exact_date(day: date) -> str:
    """A calendar date (InvoiceDate, DueDate): local midnight, i.e. midnight 'UTC' in Exact's encoding."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"/Date({int(midnight.timestamp() * 1000)})/"


def parse_exact(value: str) -> datetime:
    """The naive Amsterdam wall time inside a `/Date(ms)/` value (for tests and the control API)."""
    ms = int(value[len("/Date(") : value.index(")")])
    return datetime.fromtimestamp(ms / 1000, tz=UTC).replace(tzinfo=None)


def coerce_date(value: object) -> str | None:
    """Accept `/Date(..)/`, ISO `YYYY-MM-DD[...]` or None from callers; store Exact's encoding."""
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return exact_date(value)
    text = str(value)
    if text.startswith("/Date("):
        return text
    return exact_date(date.fromisoformat(text[:10]))
