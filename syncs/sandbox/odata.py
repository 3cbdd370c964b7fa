"""The OData query syntax Exact's sync endpoints need: `Timestamp gt nL`, $select, $skiptoken, $top."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from syncs.sandbox.responses import ApiError

MANDATORY_FILTER = (
    "This endpoint has mandatory filtering applied. A GET request for this endpoint must have a $filter "
    "parameter with one of the following fields in the url: Timestamp."
)
SELECT_REQUIRED = "Please add a $select or a $top=1 statement to the query string."
_TIMESTAMP_GT = re.compile(r"\bTimestamp\s+gt\s+(-?\d+)L?(?![\w.])", re.IGNORECASE)
_URL_SAFE = "$',()"
_SKIPTOKEN = re.compile(r"^(\d+)L?$")


@dataclass(frozen=True)
class SyncQuery:
    after_timestamp: int
    select: list[str]
    after_seq: int
    top: int | None


def parse_select(params: Mapping[str, str], allowed: frozenset[str], type_name: str) -> list[str] | None:
    """The requested fields in order; None when absent. Unknown fields are refused, as Exact does."""
    raw = params.get("$select")
    if raw is None or not raw.strip():
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if "*" in names:
        raise ApiError(400, SELECT_REQUIRED)
    for name in names:
        if name not in allowed:
            raise ApiError(400, f"Property '{name}' does not exist on type '{type_name}'.")
    return list(dict.fromkeys(names))


def parse_top(params: Mapping[str, str]) -> int | None:
    raw = params.get("$top")
    if raw is None:
        return None
    if not raw.isdigit():
        raise ApiError(400, f"Invalid $top value '{raw}'.")
    return int(raw)


def parse_sync_query(params: Mapping[str, str], fields: frozenset[str], type_name: str) -> SyncQuery:
    match = _TIMESTAMP_GT.search(params.get("$filter", ""))
    if match is None:
        raise ApiError(400, MANDATORY_FILTER)
    top = parse_top(params)
    select = parse_select(params, fields, type_name)
    if select is None:
        if top != 1:
            raise ApiError(400, SELECT_REQUIRED)
        select = sorted(fields)
    after_seq = 0
    token = params.get("$skiptoken")
    if token is not None:
        token_match = _SKIPTOKEN.match(token.strip().strip("'"))
        if token_match is None:
            raise ApiError(400, f"Invalid $skiptoken '{token}'.")
        after_seq = int(token_match.group(1))
    return SyncQuery(int(match.group(1)), select, after_seq, top)


def next_link(base: str, params: Mapping[str, str], after_seq: int, top: int | None) -> str:
    """The absolute `__next` URL: same query, continuing after `after_seq`."""
    query = {k: v for k, v in params.items() if k not in ("$skiptoken", "$top")}
    if top is not None:
        query["$top"] = str(top)
    query["$skiptoken"] = f"{after_seq}L"
    return f"{base}?{urlencode(query, quote_via=quote, safe=_URL_SAFE)}"
