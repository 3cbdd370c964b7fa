"""Reading the values of Exact Online rows into Python types.

Exact is loose about types: numbers and booleans may arrive as strings, codes come padded, and `/Date(ms)/`
values hold Europe/Amsterdam wall-clock time written as if it were UTC. Every reader here takes the field name
so that a bad value fails with a `MalformedResponseError` that says which field was wrong.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from syncs.core.errors import MalformedResponseError

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
_EPOCH = datetime(1970, 1, 1)
# `/Date(ms)/`, optionally with the `+hhmm` offset some OData v2 writers append
# (ignored: Exact's value is wall time).
_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _bad(field: str, value: object, what: str) -> MalformedResponseError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return MalformedResponseError(f"field {field}: cannot read {shown} as {what}")


def _wall_time(value: object, field: str) -> datetime | None:
    """The naive Amsterdam wall time a value stands for, or None for a null/empty value."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(AMSTERDAM).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str):
        raise _bad(field, value, "a date")
    text = value.strip()
    if not text:
        return None
    match = _MS_DATE.match(text)
    if match:
        try:
            return _EPOCH + timedelta(milliseconds=int(match.group(1)))
        except OverflowError:
            raise _bad(field, value, "a date") from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise _bad(field, value, "a date") from None
    # An ISO value with an explicit offset names an instant; convert it to Amsterdam wall time.
    return parsed.astimezone(AMSTERDAM).replace(tzinfo=None) if parsed.tzinfo else parsed


def exact_datetime(value: object, field: str = "value") -> datetime | None:
    """An aware UTC datetime from Exact's `/Date(ms)/` (Amsterdam wall time labelled as UTC) or an ISO string.

    Naive ISO strings are read as Amsterdam wall time too; ISO strings with an offset are taken as they say.
    In the autumn DST overlap the earlier (summer time) instant is chosen: Exact's encoding cannot tell
    the two apart.
    """
    wall = _wall_time(value, field)
    if wall is None:
        return None
    return wall.replace(tzinfo=AMSTERDAM).astimezone(UTC)


def exact_date(value: object, field: str = "value") -> date | None:
    """The Amsterdam calendar date of a `/Date(ms)/` or ISO value (InvoiceDate, DueDate: local midnight)."""
    wall = _wall_time(value, field)
    return None if wall is None else wall.date()


def to_decimal(value: object, field: str = "value") -> Decimal | None:
    """A Decimal from a JSON number or a numeric string; floats go through `str` so 0.1 stays 0.1."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _bad(field, value, "a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(field, value, "a number")
        return Decimal(str(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _bad(field, value, "a number")
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise _bad(field, value, "a number") from None
        if not number.is_finite():
            raise _bad(field, value, "a number")
        return number
    raise _bad(field, value, "a number")


def to_int(value: object, field: str = "value") -> int | None:
    """An int from a JSON number or a numeric string ("42", "42.0", Int64 literals like "42L")."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _bad(field, value, "an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = value.strip()
        if value.endswith(("l", "L")):
            value = value[:-1]
    if not isinstance(value, float | str | Decimal):
        raise _bad(field, value, "an integer")
    number = to_decimal(value, field)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise _bad(field, value, "an integer")
    return int(number)


def to_bool(value: object, field: str = "value") -> bool | None:
    """A bool from true/false, 1/0 or their string forms (any case)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        if not text:
            return None
    raise _bad(field, value, "a boolean")


def to_uuid(value: object, field: str = "value") -> uuid.UUID | None:
    """A UUID from Exact's GUID strings (also accepts the `guid'...'` literal form)."""
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise _bad(field, value, "a GUID")
    text = value.strip()
    if not text:
        return None
    if text.startswith("guid'") and text.endswith("'"):
        text = text[5:-1]
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _bad(field, value, "a GUID") from None


def clean_text(value: object, field: str = "value") -> str | None:
    """Text without surrounding whitespace (Account `Code` is right-aligned in 18 chars); "" becomes None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _bad(field, value, "text")
    text = (value if isinstance(value, str) else str(value)).strip()
    if "\x00" in text:
        raise _bad(field, value, "text")  # Postgres text cannot hold NUL
    return text or None


def without_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """The row without OData's `__metadata` (and `__deferred` navigation stubs): what goes into `raw`."""
    return {
        key: value
        for key, value in row.items()
        if key != "__metadata" and not (isinstance(value, dict) and "__deferred" in value)
    }
