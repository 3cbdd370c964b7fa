"""Validation before any call: one clear message per field; a payload with any message never reaches Exact."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Uuid

from syncs.actions.declaration import Action, Kind, Param
from syncs.core.errors import FatalError

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class ActionValidationError(FatalError):
    """The payload was refused before any call; `errors` maps each field (`Lines[0].Item`) to its message."""

    def __init__(self, action: str, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        listed = "; ".join(f"{name}: {message}" for name, message in self.errors.items())
        super().__init__(f"{action}: {listed}")


def _value(param: Param, value: Any) -> tuple[Any, str | None]:
    """The value to send, or an error message."""
    kind = param.kind
    if kind is Kind.GUID:
        try:
            return str(UUID(str(value))), None
        except ValueError:
            return None, f"not a GUID: {value!r}"
    if kind is Kind.TEXT:
        if not isinstance(value, str):
            return None, f"must be text, not {type(value).__name__}"
        if param.max_length is not None and len(value) > param.max_length:
            return None, f"at most {param.max_length} characters (got {len(value)})"
        return value, None
    if kind is Kind.INT:
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
            return None, f"must be a whole number, not {value!r}"
        return int(value), None
    if kind is Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None, f"must be a number, not {value!r}"
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None, f"must be a number, not {value!r}"
        if not number.is_finite():
            return None, f"must be a finite number, not {value!r}"
        return float(number) if not isinstance(value, int) else value, None
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            return None, f"must be true or false, not {value!r}"
        return value, None
    if kind is Kind.DATE:
        try:
            return date.fromisoformat(str(value)[:10]).isoformat(), None
        except ValueError:
            return None, f"must be a date YYYY-MM-DD, not {value!r}"
    return _base64(param, value)


def _base64(param: Param, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, "must be base64 text"
    try:
        size = len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None, "must be base64 text (A-Z, a-z, 0-9, +, /, = padding)"
    if param.max_bytes is not None and size > param.max_bytes:
        return None, f"at most {param.max_bytes} bytes once decoded (got {size})"
    return value, None


def _fields(
    params: Mapping[str, Param], payload: Mapping[str, Any], prefix: str, errors: dict[str, str], skip: set[str]
) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name in payload:
        if name not in params and name not in skip:
            errors[f"{prefix}{name}"] = f"unknown field; known: {', '.join(params)}"
    for name, param in params.items():
        value = payload.get(name)
        if value is None or value == "":
            if param.required and param.lookup is None:  # a lookup fills it (resolve_lookups) or says why not
                errors[f"{prefix}{name}"] = "required"
            continue
        checked, problem = _value(param, value)
        if problem is None and param.choices and checked not in param.choices:
            problem = f"must be one of {', '.join(map(str, param.choices))}, not {value!r}"
        if problem is not None:
            errors[f"{prefix}{name}"] = problem
        else:
            clean[name] = checked
    return clean


def check_payload(action: Action, payload: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The payload as it will be sent (typed, normalised; only the valid fields), and a message per bad field.
    No I/O."""
    if not isinstance(payload, Mapping):
        return {}, {"payload": "must be a JSON object"}
    errors: dict[str, str] = {}
    lines_name = action.lines.name if action.lines else ""
    clean = _fields(action.fields(), payload, "", errors, {lines_name} if lines_name else set())
    if action.lines is not None:
        lines = payload.get(lines_name)
        spec = action.lines
        if not isinstance(lines, list):
            errors[lines_name] = f"required: a list of {spec.min_count} to {spec.max_count} lines"
        elif not spec.min_count <= len(lines) <= spec.max_count:
            errors[lines_name] = f"needs {spec.min_count} to {spec.max_count} lines, got {len(lines)}"
        else:
            params = {p.name: p for p in spec.params}
            clean_lines = []
            for index, line in enumerate(lines):
                prefix = f"{lines_name}[{index}]."
                if not isinstance(line, Mapping):
                    errors[f"{lines_name}[{index}]"] = "must be a JSON object"
                    continue
                clean_line = _fields(params, line, prefix, errors, set())
                if spec.one_of and not any(clean_line.get(name) for name in spec.one_of):
                    errors.setdefault(f"{prefix}{spec.one_of[0]}", f"one of {' or '.join(spec.one_of)} is required")
                clean_lines.append(clean_line)
            clean[lines_name] = clean_lines
    return clean, errors


def _references(action: Action, clean: Mapping[str, Any]) -> list[tuple[str, Param, str]]:
    """(field path, its param, key) for every referencing value in the payload."""
    found = [(p.name, p, clean[p.name]) for p in action.params if p.references and p.name in clean]
    if action.lines is not None:
        for index, line in enumerate(clean.get(action.lines.name, [])):
            for param in action.lines.params:
                if param.references and param.name in line:
                    found.append((f"{action.lines.name}[{index}].{param.name}", param, line[param.name]))
    return found


def reference_errors(session: Session, action: Action, division: int, clean: Mapping[str, Any]) -> dict[str, str]:
    """Referenced records must exist (not deleted, unless the param says `live=False`) in their synced table of
    this division, where we have it."""
    wanted = _references(action, clean)
    errors: dict[str, str] = {}
    for table in sorted({str(param.references) for _, param, _ in wanted}):
        if not _IDENT.match(table) or session.scalar(text("SELECT to_regclass(:t)"), {"t": table}) is None:
            continue  # not a synced table (yet): Exact itself will say whether the record exists
        keys = [UUID(key) for _, param, key in wanted if param.references == table]
        stmt = text(
            f'SELECT id, deleted_at IS NULL FROM "{table}" WHERE division = :division AND id = ANY(:keys)'
        ).bindparams(bindparam("keys", type_=ARRAY(Uuid())))
        live = {str(key): alive for key, alive in session.execute(stmt, {"division": division, "keys": keys})}
        for path, param, key in wanted:
            found = key in live and (live[key] or not param.live)
            if param.references == table and not found:
                errors[path] = f"no {table} record {key} in division {division} (synced; run a sync if it is new)"
    return errors


def resolve_lookups(
    session: Session, action: Action, division: int, clean: dict[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """Fill each empty field that has a Lookup from the synced tables: (what was chosen and why, errors).
    Exactly one candidate is taken; none or several ask the caller to choose."""
    chosen: dict[str, str] = {}
    errors: dict[str, str] = {}
    for param in action.params:
        lookup = param.lookup
        if lookup is None or clean.get(param.name) not in (None, ""):
            continue
        field, wanted = lookup.where
        if session.scalar(text("SELECT to_regclass(:t)"), {"t": lookup.table}) is None:
            errors[param.name] = f"required (no synced {lookup.table} here to look up the {lookup.what})"
            continue
        found = session.scalars(
            text(f'SELECT "{lookup.column}" FROM "{lookup.table}" WHERE division = :d AND deleted_at IS NULL '
                 f'AND "{field}" = :w ORDER BY 1'),
            {"d": division, "w": wanted},
        ).all()  # fmt: skip
        if len(found) == 1:
            clean[param.name] = found[0]
            chosen[param.name] = f"{found[0]}: the division's only {lookup.what}"
        elif found:
            errors[param.name] = f"required: the division has {len(found)} of them ({', '.join(found)}); choose one"
        else:
            errors[param.name] = f"required: the division has no {lookup.what} in the synced {lookup.table}"
    return chosen, errors
