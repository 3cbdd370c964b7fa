"""Exact's standard endpoints for the entities actions write: POST, PUT, DELETE, GET by key and `$filter eq`.

As the catalog's write quirks say: a POST answers 201 with an echo where every field but the key is null (W1,
W2); PUT and DELETE answer 204 with no body (W3, W4); keys are written `(guid'...')`; a missing required field
is refused with Exact's error envelope (400, counted toward the error limit). Writes go through the same
change logs as the control API, so they show up in the sync feeds and sync/Deleted.

Fault `store_then_timeout`: the write is stored, then answered `write_timeout_delay` seconds late, so a client
with a shorter timeout sees a timeout for a write Exact did keep.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from syncs.entities.catalog import CATALOG
from syncs.sandbox import api
from syncs.sandbox.documents import SHAPES, Shape
from syncs.sandbox.responses import Answer, ApiError, exact_error
from syncs.sandbox.state import SandboxState

Record = dict[str, Any]
_KEYED = re.compile(r"^(?P<entity>\w+)\((?:guid)?'(?P<key>[^']*)'\)$")
_CLAUSE = re.compile(r"^\s*(?P<field>\w+)\s+eq\s+(?:guid)?'(?P<value>(?:[^']|'')*)'\s*$")
HIDDEN = frozenset({"Timestamp", "Lines"})  # standard endpoints have no Timestamp; lines go by their own name


@dataclass(frozen=True)
class Writable:
    key: str
    required: tuple[str, ...]
    create: Callable[[SandboxState, int, Record], Record]
    update: Callable[[SandboxState, int, str, Record], Record]
    delete: Callable[[SandboxState, int, str], Record] | None  # None: DELETE is refused (405)
    records: Callable[[SandboxState, int], list[Record]]


def _create_invoice(state: SandboxState, division: int, body: Record) -> Record:
    lines = body.pop("SalesInvoiceLines", None) or []
    if isinstance(lines, dict):  # Exact also takes {"results": [...]}
        lines = lines.get("results", [])
    if not lines:
        raise ApiError(400, "SalesInvoiceLines: at least one line is required")
    return state.create_invoice(division, body, list(lines))


def _invoice_view(record: Record) -> Record:
    view = {k: v for k, v in record.items() if k not in HIDDEN}
    view["SalesInvoiceLines"] = {
        "results": [{k: v for k, v in line.items() if k != "Timestamp"} for line in record["Lines"]]
    }
    return view


WRITABLE: dict[str, Writable] = {
    "crm/accounts": Writable(
        "ID",
        ("Name",),
        lambda s, d, b: s.create_account(d, **b),
        lambda s, d, k, b: s.update_account(d, k, **b),
        lambda s, d, k: s.delete_account(d, k),
        lambda s, d: s.accounts(d),
    ),
    "salesinvoice/salesinvoices": Writable(
        "InvoiceID",
        ("Journal", "OrderedBy"),
        _create_invoice,
        lambda s, d, k, b: s.update_invoice(d, k, b),
        lambda s, d, k: s.delete_invoice(d, k),
        lambda s, d: [_invoice_view(r) for r in s.invoices(d)],
    ),
}


def _catalog(
    entity: str, key: str, required: tuple[str, ...], write_only: tuple[str, ...],
    complete: Callable[[Record], Record] = dict,
) -> Writable:  # fmt: skip
    """A writable entity the catalog store serves: a create gets every declared field and the fields Exact takes
    that the sync does not declare (null unless given), then what Exact derives (`complete`); an update may set
    the write-only fields on generated rows too."""
    fields = tuple(name for name in CATALOG[entity].select_fields if name != "Timestamp") + write_only

    def create(state: SandboxState, division: int, body: Record) -> Record:
        return state.create_record(division, entity, **complete({**dict.fromkeys(fields), **body}))

    return Writable(
        key,
        required,
        create,
        lambda s, d, k, b: s.update_record(d, entity, k, write_only, **b),
        lambda s, d, k: s.delete_record(d, entity, k),
        lambda s, d: s.records(d, entity),
    )


def _attachment(record: Record) -> Record:
    """What Exact derives from an uploaded file: its size and a download URL (the bytes stay out of the feed)."""
    try:
        size = len(base64.b64decode(str(record["Attachment"]), validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("Attachment: not base64") from None
    return {**record, "FileSize": float(size), "Url": f"https://sandbox.invalid/docs/{record['FileName']}"}


def _document(shape: Shape, required: tuple[str, ...]) -> Writable:
    """A document with lines (syncs/sandbox/documents.py); the sandbox does not delete these."""
    return Writable(
        shape.key,
        required,
        lambda s, d, b: s.create_document(d, shape, b),
        lambda s, d, k, b: s.update_document(d, shape, k, b),
        None,
        lambda s, d: s.documents(d, shape),
    )


WRITABLE.update(
    {
        "crm/contacts": _catalog(
            "contacts", "ID", ("Account", "FirstName", "LastName"), ("BusinessMobile", "Title", "Notes")
        ),
        "logistics/items": _catalog("items", "ID", ("Code", "Description"), ("ExtraDescription",)),
        "documents/documents": _catalog("documents", "ID", ("Subject", "Type"), ("Body",)),
        "documents/documentattachments": _catalog(
            "document_attachments", "ID", ("Document", "FileName", "Attachment"), ("Attachment",), _attachment
        ),
        "salesorder/salesorders": _document(SHAPES["salesorder/salesorders"], ("OrderedBy",)),
        "crm/quotations": _document(SHAPES["crm/quotations"], ("OrderAccount",)),
        "purchaseorder/purchaseorders": _document(SHAPES["purchaseorder/purchaseorders"], ("Supplier",)),
        "purchaseentry/purchaseentries": _document(SHAPES["purchaseentry/purchaseentries"], ("Journal", "Supplier")),
    }
)
# Collections the read API serves for syncs (purchase entries by `Modified`): only `eq` lookups are ours there.
READ_ELSEWHERE = frozenset(entity.endpoint.lower() for entity in CATALOG.values()) & frozenset(WRITABLE)


def _resource(request: Request) -> tuple[Writable, str, str | None]:
    service, entity = request.path_params["service"], request.path_params["entity"]
    keyed = _KEYED.match(entity)
    name = f"{service}/{keyed.group('entity') if keyed else entity}".lower()
    writable = WRITABLE.get(name)
    if writable is None:
        raise ApiError(404, "Resource not found")
    return writable, name, keyed.group("key") if keyed else None


def _visible(record: Record) -> Record:
    return {k: v for k, v in record.items() if k not in HIDDEN}


def _find(state: SandboxState, writable: Writable, division: int, key: str) -> Record:
    for record in writable.records(state, division):
        if str(record[writable.key]).lower() == key.lower():
            return record
    raise ApiError(404, "Object not found")


def _filtered(state: SandboxState, writable: Writable, division: int, expression: str) -> list[Record]:
    wanted: list[tuple[str, str]] = []
    for clause in re.split(r"\s+and\s+", expression):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ApiError(400, f"Sandbox supports only `Field eq '...'` filters here, not {clause!r}")
        wanted.append((match.group("field"), match.group("value").replace("''", "'")))
    return [r for r in writable.records(state, division) if all(str(r.get(f, "")).strip() == v for f, v in wanted)]


def _handler(request: Request, state: SandboxState, division: int, body: Any) -> Any:
    writable, name, key = _resource(request)
    uri = f"{str(request.base_url).rstrip('/')}/api/v1/{division}/{request.path_params['service']}"
    if request.method == "GET":
        if key is not None:
            return {"d": _visible(_find(state, writable, division, key))}
        expression = request.query_params.get("$filter")
        if not expression:
            raise ApiError(400, "This endpoint has mandatory filtering applied. Add a $filter.")
        return {"d": {"results": [_visible(r) for r in _filtered(state, writable, division, expression)]}}
    if request.method == "POST":
        if key is not None or not isinstance(body, dict):
            raise ApiError(400, "A POST takes a JSON object on the collection")
        missing = [f for f in writable.required if body.get(f) in (None, "")]
        if missing:
            raise ApiError(400, f"Mandatory: {', '.join(missing)}")
        try:
            record = writable.create(state, division, dict(body))
        except (ValueError, TypeError) as refused:
            raise ApiError(400, str(refused)) from None
        state.count_write(division)
        new_key = record[writable.key]
        echo: Record = {k: None for k in _visible(record)}
        echo[writable.key] = new_key
        echo["__metadata"] = {"uri": f"{uri}/{request.path_params['entity']}(guid'{new_key}')"}
        return Answer({"d": echo}, 201)
    if key is None:
        raise ApiError(400, f"{request.method} needs a key: {name}(guid'...')")
    _find(state, writable, division, key)
    try:
        if request.method == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "A PUT takes a JSON object")
            writable.update(state, division, key, {k: v for k, v in body.items() if k != writable.key})
        elif writable.delete is None:
            raise ApiError(405, f"The sandbox does not {request.method} {name}")
        else:
            writable.delete(state, division, key)
    except (ValueError, TypeError) as refused:
        raise ApiError(400, str(refused)) from None
    state.count_write(division)
    return Answer(None, 204)


def _ours(request: Request) -> bool:
    """Writes, reads by key and `$filter eq` lookups of writable resources; other GETs are the API's."""
    if request.method != "GET":
        return True
    service, entity = request.path_params["service"], request.path_params["entity"]
    if _KEYED.match(entity) is not None:
        return True
    name = f"{service}/{entity}".lower()
    if name in READ_ELSEWHERE:
        clauses = re.split(r"\s+and\s+", request.query_params.get("$filter", ""))
        return all(_CLAUSE.match(clause) for clause in clauses)
    return name in WRITABLE


async def _api_route(request: Request) -> Response:
    """The read route of syncs.sandbox.api this path would reach without us (standard endpoints, Divisions)."""
    for route in api.ROUTES:
        match, child = route.matches(request.scope)
        if match is Match.FULL:
            response: Response = await route.endpoint(Request({**request.scope, **child}, request.receive))
            return response
    return exact_error(404, "Resource not found")


async def _endpoint(request: Request) -> Response:
    if not _ours(request):
        return await _api_route(request)
    division = int(request.path_params["division"])
    body: Any = None
    if request.method in ("POST", "PUT"):
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
    state: SandboxState = request.app.state.sandbox
    response = await api.guarded(request, division, lambda r, s, d: _handler(r, s, d, body))
    if request.method != "GET" and response.status_code < 300 and state.take_write_timeout():
        await asyncio.sleep(state.config.write_timeout_delay)
    return response


ROUTES = [
    Route("/api/v1/{division:int}/{service}/{entity}", _endpoint, methods=["GET", "POST", "PUT", "DELETE"]),
]
