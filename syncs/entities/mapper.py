"""Row mappers compiled once per entity from its declaration.

`compile_converter` writes the source of one function per entity that reads every declared field of a row with
a type-specific fast path inlined (a str that only needs trimming, an int that is already an int, a GUID string
that matches the pattern, a `/Date(ms)/` string) and falls back to the generic readers of `syncs.exact.values`
for everything else, which either convert Exact's looser forms (numbers as strings, `guid'...'`) or raise a
`MalformedResponseError` naming the field and the value. The caller adds the row's key and the entity.
Generated code instead of a loop over field objects: no call and no dispatch per field on the common path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from syncs.core.errors import MalformedResponseError
from syncs.entities.declaration import Entity, Field, Kind
from syncs.exact import values

Converter = Callable[[Mapping[str, Any]], dict[str, Any]]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$").match
_MS_DATE = re.compile(r"^/Date\((-?\d+)\)/$").match
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1)
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_offsets: dict[int, timedelta] = {}  # Amsterdam's UTC offset per wall-clock hour (DST changes on whole hours)


def _instant(ms: int, field: str, value: object) -> datetime:
    """`/Date(ms)/` (Amsterdam wall time written as UTC) -> aware UTC datetime, as `values.exact_datetime`."""
    try:
        wall = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise MalformedResponseError(f"field {field}: cannot read {value!r} as a date") from None
    hour = ms // _HOUR_MS
    offset = _offsets.get(hour)
    if offset is None:
        offset = wall.replace(tzinfo=values.AMSTERDAM).utcoffset() or timedelta(0)
        _offsets[hour] = offset
    return (wall - offset).replace(tzinfo=UTC)


def _day(ms: int, field: str, value: object) -> date:
    try:
        return _EPOCH_DAY + timedelta(days=ms // _DAY_MS)
    except OverflowError:
        raise MalformedResponseError(f"field {field}: cannot read {value!r} as a date") from None


def _out_of_range(field: str, value: object) -> MalformedResponseError:
    return MalformedResponseError(f"field {field}: {value!r} is out of range for its column")


_NAMESPACE = {
    "_GUID": _GUID,
    "_MS": _MS_DATE,
    "_instant": _instant,
    "_day": _day,
    "_range": _out_of_range,
    "_text": values.clean_text,
    "_uuid": values.to_uuid,
    "_int": values.to_int,
    "_num": values.to_decimal,
    "_bool": values.to_bool,
    "_dt": values.exact_datetime,
    "_date": values.exact_date,
    "_str": str,
    "_int_t": int,
    "_float_t": float,
    "_bool_t": bool,
    "INT32": _INT32,
    "INT64": _INT64,
}

# Each snippet turns `v` (the raw value, not None) into the stored value; FIELD stands for the field's name.
_SNIPPETS: dict[Kind, str] = {
    Kind.TEXT: """
        if v.__class__ is _str:
            v = v.strip() or None
            if v is not None and "\\x00" in v:
                v = _text(v, FIELD)
        else:
            v = _text(v, FIELD)""",
    Kind.GUID: """
        if v.__class__ is not _str or _GUID(v) is None:
            v = _uuid(v, FIELD)""",
    Kind.INT: """
        if v.__class__ is not _int_t:
            v = _int(v, FIELD)
        if v is not None and not INT32[0] <= v <= INT32[1]:
            raise _range(FIELD, v)""",
    Kind.BIGINT: """
        if v.__class__ is not _int_t:
            v = _int(v, FIELD)
        if v is not None and not INT64[0] <= v <= INT64[1]:
            raise _range(FIELD, v)""",
    Kind.NUMBER: """
        if v.__class__ is not _float_t and v.__class__ is not _int_t:
            v = _num(v, FIELD)""",
    Kind.BOOL: """
        if v.__class__ is not _bool_t:
            v = _bool(v, FIELD)""",
    Kind.DATETIME: """
        m = _MS(v) if v.__class__ is _str else None
        v = _instant(_int_t(m.group(1)), FIELD, v) if m is not None else _dt(v, FIELD)""",
    Kind.DATE: """
        m = _MS(v) if v.__class__ is _str else None
        v = _day(_int_t(m.group(1)), FIELD, v) if m is not None else _date(v, FIELD)""",
}


def entity_fields(entity: Entity) -> list[Field]:
    """Every field the entity's tables declare, once per Exact name (all tables must agree on its column)."""
    found: dict[str, Field] = {}
    for table in entity.tables:
        for field in table.fields:
            seen = found.setdefault(field.exact, field)
            if (seen.kind, seen.column) != (field.kind, field.column):
                raise ValueError(f"{entity.name}: field {field.exact} is declared two ways")
    return list(found.values())


def compile_converter(entity: Entity, extra: Mapping[str, Kind] = {}) -> Converter:
    """A function row -> {column: value} for every declared field (plus `extra`: Exact name -> kind, stored
    under the Exact name, e.g. the key and Timestamp)."""
    readers = [(f.exact, f.kind, f.column) for f in entity_fields(entity)]
    readers += [(name, kind, name) for name, kind in extra.items()]
    lines = ["def convert(row):", "    g = row.get", "    r = {}"]
    for exact, kind, column in readers:
        snippet = _SNIPPETS[kind].replace("FIELD", repr(exact)).replace("\n", "\n    ")
        lines += [f"    v = g({exact!r})", "    if v is not None:" + snippet, f"    r[{column!r}] = v"]
    lines.append("    return r")
    namespace = dict(_NAMESPACE)
    exec(compile("\n".join(lines), f"<mapper {entity.name}>", "exec"), namespace)
    return cast(Converter, namespace["convert"])
