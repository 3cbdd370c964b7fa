"""Payloads made from an action's declaration against the sandbox's data, and what the sandbox holds of an
action's kind: one generic test drives every action with them (tests/worker/test_actions_every.py)."""

from __future__ import annotations

import base64
from typing import Any

from syncs.actions.build import header_table
from syncs.actions.declaration import Action, Kind, Param, Verb
from syncs.sandbox.documents import SHAPES
from syncs.sandbox.server import SandboxServer

DIVISION = 124132  # the sandbox's seeded current division (tests.worker.conftest.CURRENT)
TODAY = "2026-11-30"


def held(sandbox: SandboxServer, action: Action, division: int = DIVISION) -> dict[str, dict[str, Any]]:
    """The records of the action's kind the sandbox holds, by key (as its standard endpoint answers them)."""
    state = sandbox.state
    shape = SHAPES.get(action.resource.lower())
    if action.verb is Verb.ATTACH:  # what attaching a file adds: a document
        found = state.records(division, "documents")
    elif shape is not None:
        found = state.documents(division, shape)
    elif action.entity == "accounts":
        found = state.accounts(division)
    elif action.entity == "sales_invoices":
        found = state.invoices(division)
    else:
        found = state.records(division, action.entity or "")
    key = "ID" if action.verb is Verb.ATTACH else action.key
    return {str(record[key]): record for record in found}


def existing(sandbox: SandboxServer, action: Action) -> str:
    """A key of a record an update, delete or get can act on (an open one where only open ones change)."""
    if action.verb is Verb.ATTACH:  # a file goes on an invoice
        records = {str(record[action.key]): record for record in sandbox.state.invoices(DIVISION)}
    else:
        records = held(sandbox, action)
    wanted = action.require_status
    keys = [key for key, record in records.items() if wanted is None or record.get(wanted[0]) == wanted[1]]
    return sorted(keys)[0]


def _referenced(sandbox: SandboxServer, table: str) -> str:
    if table == "accounts":
        return str(sorted(a["ID"] for a in sandbox.state.accounts(DIVISION))[0])
    return str(sorted(r["ID"] for r in sandbox.state.records(DIVISION, table))[0])


def value(sandbox: SandboxServer, param: Param, salt: str) -> Any:
    """A valid value of the param's kind (its first choice, a referenced record that exists, ...)."""
    if param.choices:
        return param.choices[0]
    if param.kind is Kind.GUID:
        return _referenced(sandbox, param.references) if param.references else None
    text = f"{param.name} {salt}"[: param.max_length or 60]
    return {
        Kind.TEXT: text, Kind.INT: 3, Kind.NUMBER: 2.5, Kind.BOOL: True, Kind.DATE: TODAY,
        Kind.BASE64: base64.b64encode(f"file {salt}".encode()).decode(),
    }[param.kind]  # fmt: skip


def _fields(sandbox: SandboxServer, params: tuple[Param, ...], salt: str) -> dict[str, Any]:
    """Every field that can be given a value (a journal is left to its lookup)."""
    made = {p.name: value(sandbox, p, salt) for p in params if p.lookup is None}
    return {name: given for name, given in made.items() if given is not None}


def payload(sandbox: SandboxServer, action: Action, salt: str = "written") -> dict[str, Any]:
    """A valid payload: a record's key for update/delete/get, every field, and two lines where it has lines."""
    if action.verb is Verb.LIST:
        return {}
    if action.verb in (Verb.DELETE, Verb.GET):
        return {action.key: existing(sandbox, action)}
    keyed = action.verb in (Verb.UPDATE, Verb.ATTACH)
    made = _fields(sandbox, action.params[1:] if keyed else action.params, salt)
    if keyed:
        made = {action.key: existing(sandbox, action), **made}
    if action.lines is not None:
        lines = [_fields(sandbox, action.lines.params, f"{salt} {n}") for n in (1, 2)]
        made[action.lines.name] = [{k: v for k, v in line.items() if k != "UnitPrice"} for line in lines]
    return made


def invalid(action: Action) -> tuple[dict[str, Any], set[str]]:
    """A payload with every required field missing (a lookup's aside) and one field of the wrong kind, and the
    fields the refusal must name."""
    required = {p.name for p in action.params if p.required and p.lookup is None}
    wrong = next((p for p in action.params if p.kind is not Kind.TEXT), None)
    bad: dict[str, Any] = {}
    if wrong is not None:
        bad[wrong.name] = "not-a-value" if wrong.kind is not Kind.BOOL else "yes"
    return bad, required | set(bad)


def columns(action: Action, sent: dict[str, Any]) -> dict[str, Any]:
    """The sent header fields the entity's table stores, by column, as the synced row holds them (a file's
    fields are the document's, not the invoice's)."""
    if action.verb is Verb.ATTACH:
        return {}
    table = header_table(action.entity or "")
    stored = {f.exact: f.column for f in table.fields}
    return {stored[name]: given for name, given in sent.items() if name in stored and name != action.key}
