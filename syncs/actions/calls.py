"""The calls an action makes besides its write: read one record back, look a write up after a lost answer, and
the read-only actions (get one record, list reference data)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
import structlog
from sqlalchemy.orm import Session, sessionmaker

from syncs.actions.declaration import Action, Verb
from syncs.actions.readback import synced_row
from syncs.core.errors import ExactRequestError, FatalError
from syncs.exact.client import ExactClient
from syncs.exact.odata import decode_json, page_from_json

log = structlog.get_logger(__name__)


class ActionRefusedError(FatalError):
    """Exact refused the write (4xx), or a precondition failed; the ledger keeps the answer."""


def key_of(action: Action, record: dict[str, Any]) -> str:
    value = record.get(action.key)
    if not value:  # NG parses the key from __metadata.uri when the echo lacks it (catalog W1)
        uri = str((record.get("__metadata") or {}).get("uri", ""))
        value = uri.rsplit("guid'", 1)[-1].rstrip("')") if "guid'" in uri else None
    if not value:
        raise ActionRefusedError(f"{action.resource}: Exact's answer names no {action.key}")
    return str(UUID(str(value)))


def error_body(exc: ExactRequestError) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(exc.body) if exc.body else None
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def keyed(action: Action, key: str) -> str:
    return f"{action.resource}(guid'{key}')"


def get_record(client: ExactClient, action: Action, division: int, key: str) -> dict[str, Any] | None:
    params = {"$expand": action.expand} if action.expand else None
    try:
        response = client.request("GET", keyed(action, key), division=division, params=params)
    except ExactRequestError as exc:
        if exc.status_code == 404:
            return None
        raise
    return page_from_json(decode_json(response.content, action.resource), action.resource).rows[0]


def look_up(
    client: ExactClient, action: Action, division: int, body: dict[str, Any], marker: str | None
) -> tuple[str | None, bool]:
    """After a lost answer: (the record's key, True) when Exact has the write already, else (None, False)."""
    if action.verb is Verb.CREATE:
        if not action.marker or marker is None:
            return None, False
        escaped = marker.replace("'", "''")
        response = client.request(
            "GET", action.resource, division=division,
            params={"$filter": f"{action.marker} eq '{escaped}'", "$select": action.key},
        )  # fmt: skip
        rows = page_from_json(decode_json(response.content, action.resource), action.resource).rows
        if len(rows) > 1:
            raise ActionRefusedError(f"{action.name}: {len(rows)} records carry the marker {marker!r}; resolve by hand")
        log.info("action.lookup", action=action.name, marker=marker, found=bool(rows))
        return (key_of(action, rows[0]), True) if rows else (None, False)
    if action.verb is Verb.DELETE:
        gone = get_record(client, action, division, str(body[action.key])) is None
        return (str(body[action.key]), True) if gone else (None, False)
    return None, False  # an update: sending the same PUT again is harmless


def jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(row, default=str))
    return parsed


def read(
    client: ExactClient, action: Action, division: int, clean: dict[str, Any], sessions: sessionmaker[Session]
) -> dict[str, Any]:
    if action.verb is Verb.GET:
        key = clean[action.key]
        record = get_record(client, action, division, key)
        if record is None:
            raise ActionRefusedError(f"{action.name}: no {action.resource} record {key}")
        with sessions() as session:
            row = jsonable(synced_row(session, action, division, key))
        return {"action": action.name, "division": division, "key": key, "state": "succeeded", "record": record,
                "row": row}  # fmt: skip
    params = {k: v for k, v in (("$select", action.select), ("$filter", action.filter)) if v}
    records = [row for page in client.pages(division, action.resource, params) for row in page.rows]
    return {"action": action.name, "division": division, "state": "succeeded", "records": records}
