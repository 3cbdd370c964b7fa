"""The one code path of every action: validate -> ledger -> send -> (on an ambiguous failure: look, then maybe
re-send) -> read back -> upsert into the synced table -> result. The Celery task, the Python API and the CLI all
call `perform`.

Idempotency: a write's key is the caller's, or derived from (connection, division, action, payload) and returned.
The `actions` row for (connection, key) is taken under a Postgres advisory lock for the whole action, so two
callers with one key never both send; a finished key answers its first result again. A row left `sent` (the
answer was lost) is never sent again blindly: a create is looked up by its marker, a delete by its key, and only
re-sent when Exact does not have it; an update (a PUT of the same fields) is safe to send again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models.actions import ActionRecord, ActionState
from syncs.actions.attach import attach_file, read_back
from syncs.actions.calls import ActionRefusedError, error_body, get_record, jsonable, key_of, keyed, look_up, read
from syncs.actions.catalog import ACTIONS
from syncs.actions.declaration import Action, Verb
from syncs.actions.readback import mark_synced_deleted, synced_row, upsert_synced
from syncs.actions.validate import ActionValidationError, check_payload, reference_errors, resolve_lookups
from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.db import engine_for, session_factory
from syncs.core.errors import AmbiguousWriteError, ConfigurationError, ExactRequestError
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient
from syncs.exact.odata import decode_json, page_from_json
from syncs.lifecycle.clients import Target, connection_client, division_of, resolve_target

log = structlog.get_logger(__name__)
LOCK_CLASS = 7_309  # advisory-lock namespace of action keys (two-int form: apart from other locks)


def find_action(name: str) -> Action:
    try:
        return ACTIONS[name]
    except KeyError:
        raise ConfigurationError(f"unknown action {name!r}; `exact-sync action --list` shows them") from None


def derive_key(connection: str, division: int, action: str, payload: Any) -> str:
    digest = hashlib.sha256(orjson.dumps([connection, division, action, payload], option=orjson.OPT_SORT_KEYS))
    return f"derived-{digest.hexdigest()[:32]}"


def perform(
    settings: Settings,
    connection: str,
    action_name: str,
    payload: Any,
    *,
    division: int | None = None,
    idempotency_key: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """Run one action; returns the result dict (see README "Actions"). Raises ActionValidationError before any
    call, ActionRefusedError when Exact refuses, RetriableError subclasses (AmbiguousWriteError included) when
    it may succeed later with the same key."""
    action = find_action(action_name)
    clean, errors = check_payload(action, payload)  # no I/O at all
    sessions = session_factory(settings.database_url)
    target = resolve_target(sessions, connection, division)
    chosen: dict[str, str] = {}
    if target.division is not None:  # every bad field in one answer, before any call
        chosen, errors = _database_checks(sessions, action, target.division, clean, errors)
    if errors:
        raise ActionValidationError(action.name, errors)
    with connection_client(settings, sessions, target, clock=clock) as client:
        on = division_of(target, client)
        if not action.writes:
            return read(client, action, on, clean, sessions)
        if target.division is None:
            chosen, late = _database_checks(sessions, action, on, clean, {})
            if late:
                raise ActionValidationError(action.name, late)
        key = idempotency_key or derive_key(connection, on, action.name, clean)
        with _action_lock(settings, target.connection_id, key):
            return _write(sessions, client, action, Target(target.connection_id, connection, on), key, clean, chosen)


def _database_checks(
    sessions: sessionmaker[Session], action: Action, division: int, clean: dict[str, Any], errors: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Tenant values looked up (journals) and referenced records checked against the synced tables."""
    with sessions() as session:
        chosen, missing = resolve_lookups(session, action, division, clean)
        return chosen, reference_errors(session, action, division, clean) | missing | errors


@contextmanager
def _action_lock(settings: Settings, connection_id: int, key: str) -> Iterator[None]:
    """A session-level advisory lock on its own connection for the whole action (waits for a concurrent one);
    a connection that may still hold it is closed, never returned to the pool, so Postgres releases it."""
    number = int.from_bytes(hashlib.sha256(f"{connection_id}:{key}".encode()).digest()[:4], "big", signed=True)
    params = {"c": LOCK_CLASS, "n": number}
    db = engine_for(settings.database_url).connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        db.execute(text("SELECT pg_advisory_lock(:c, :n)"), params)
        yield
        db.execute(text("SELECT pg_advisory_unlock(:c, :n)"), params)
    except BaseException:
        with suppress(Exception):
            db.invalidate()
        raise
    finally:
        with suppress(Exception):
            db.close()


def _ledger_row(
    sessions: sessionmaker[Session], target: Target, key: str, action: Action, clean: dict[str, Any]
) -> ActionRecord:
    digest = hashlib.sha256(orjson.dumps(clean, option=orjson.OPT_SORT_KEYS)).hexdigest()
    with sessions() as session:
        session.execute(
            insert(ActionRecord)
            .values(
                connection_id=target.connection_id,
                idempotency_key=key,
                action=action.name,
                division=target.division,
                payload_hash=digest,
                payload=clean,
                state=ActionState.REQUESTED,
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["connection_id", "idempotency_key"])
        )
        session.commit()
        row = session.scalars(
            select(ActionRecord).where(
                ActionRecord.connection_id == target.connection_id, ActionRecord.idempotency_key == key
            )
        ).one()
    if (row.action, row.payload_hash, row.division) != (action.name, digest, target.division):
        raise ConfigurationError(
            f"idempotency key {key!r} was used for another write ({row.action} in division {row.division} "
            "with another payload): use a new key"
        )
    return row


def _update(sessions: sessionmaker[Session], row_id: int, **values: Any) -> None:
    with sessions() as session:
        row = session.get_one(ActionRecord, row_id)
        for name, value in values.items():
            setattr(row, name, value)
        session.commit()


def _write(
    sessions: sessionmaker[Session],
    client: ExactClient,
    action: Action,
    target: Target,
    key: str,
    clean: dict[str, Any],
    chosen: dict[str, str],
) -> dict[str, Any]:
    row = _ledger_row(sessions, target, key, action, clean)
    if row.state is ActionState.SUCCEEDED and row.answer is not None:
        return {**row.answer, "replayed": True}
    if row.state is ActionState.FAILED:
        raise ActionRefusedError(f"{action.name} (key {key}) failed before: {row.error}")
    division = target.division
    assert division is not None
    body = dict(row.payload)
    marker = row.marker
    record_key = row.record_key
    recovered = False
    if action.verb in (Verb.CREATE, Verb.ATTACH) and action.marker and marker is None:
        marker = str(body.get(action.marker) or f"exact-sync:{key.removeprefix('derived-')[:24]}")
        body[action.marker] = marker
        _update(sessions, row.id, marker=marker, payload=body)
    if action.verb is Verb.ATTACH:
        return _attach(sessions, client, action, row, division, body, chosen)
    if row.state is ActionState.SENT:  # an earlier attempt's answer was lost: look before sending again
        record_key, recovered = look_up(client, action, division, body, marker)
    if action.verb is Verb.UPDATE:
        current = get_record(client, action, division, str(body[action.key]))
        if current is None:
            return _refuse(sessions, row.id, action, f"no {action.resource} record {body[action.key]}")
        if action.require_status and current.get(action.require_status[0]) != action.require_status[1]:
            field, wanted = action.require_status
            return _refuse(sessions, row.id, action, f"{field} is {current.get(field)!r}; only {wanted!r} can change")
    if not recovered:
        record_key = _send(sessions, client, action, division, row, body)
    assert record_key is not None
    answer = _finish(sessions, client, action, division, record_key)
    return _succeeded(sessions, action, row, answer, marker=marker, recovered=recovered, chosen=chosen)


def _succeeded(
    sessions: sessionmaker[Session], action: Action, row: ActionRecord, answer: dict[str, Any], **more: Any
) -> dict[str, Any]:
    answer.update(idempotency_key=row.idempotency_key, replayed=False, **more)
    _update(
        sessions, row.id, state=ActionState.SUCCEEDED, record_key=answer["key"], answer=answer, error=None,
        finished_at=datetime.now(UTC),
    )  # fmt: skip
    log.info("action.succeeded", action=action.name, key=row.idempotency_key, record=answer["key"], **more)
    return answer


def _attach(
    sessions: sessionmaker[Session], client: ExactClient, action: Action, row: ActionRecord, division: int,
    body: dict[str, Any], chosen: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """sales_invoices.attach_file (syncs.actions.attach): three requests, the invoice read back after them."""
    looking = row.state is ActionState.SENT

    def sending(started: bool) -> AbstractContextManager[None]:
        return _sending(sessions, action, row, started)

    invoice, recovered, keys = attach_file(client, action, division, body, looking, sending)
    answer = _finish(sessions, client, action, division, invoice)
    answer.update(read_back(sessions, client, division, keys))
    return _succeeded(sessions, action, row, answer, marker=body["Body"], recovered=recovered, chosen=chosen)


def _refuse(sessions: sessionmaker[Session], row_id: int, action: Action, message: str) -> dict[str, Any]:
    _update(sessions, row_id, state=ActionState.FAILED, error=message, finished_at=datetime.now(UTC))
    raise ActionRefusedError(f"{action.name}: {message}")


@contextmanager
def _sending(
    sessions: sessionmaker[Session], action: Action, row: ActionRecord, started: bool = False
) -> Iterator[None]:
    """One request of a write: the row is `sent` before it leaves; a lost answer keeps it `sent` (the next
    attempt looks first), Exact's refusal marks it `failed`, and a failure before it left puts it back to
    `requested`, unless an earlier request of the same write (`started`) may have reached Exact."""
    _update(sessions, row.id, state=ActionState.SENT, sent_at=datetime.now(UTC),
            **({} if started else {"attempts": row.attempts + 1}))  # fmt: skip
    try:
        yield
    except AmbiguousWriteError as exc:
        _update(sessions, row.id, error=str(exc))
        hint = f"{exc}; Exact may have stored it: run it again with idempotency key {row.idempotency_key}"
        raise AmbiguousWriteError(f"{hint} (it looks the record up before sending again)") from exc
    except ExactRequestError as exc:
        _update(sessions, row.id, state=ActionState.FAILED, error=str(exc), answer=error_body(exc),
                finished_at=datetime.now(UTC))  # fmt: skip
        raise ActionRefusedError(f"{action.name}: {exc}") from None
    except BaseException as exc:  # refused by our own budget, token trouble, ...: it never reached Exact
        if not started:
            _update(sessions, row.id, state=ActionState.REQUESTED, error=f"{type(exc).__name__}: {exc}")
        raise


def _send(
    sessions: sessionmaker[Session], client: ExactClient, action: Action, division: int, row: ActionRecord,
    body: dict[str, Any],
) -> str:  # fmt: skip
    path = action.resource if action.verb is Verb.CREATE else keyed(action, str(body[action.key]))
    method = {Verb.CREATE: "POST", Verb.UPDATE: "PUT", Verb.DELETE: "DELETE"}[action.verb]
    sent_body = None if action.verb is Verb.DELETE else {k: v for k, v in body.items() if k != action.key}
    with _sending(sessions, action, row):
        try:
            response = client.request(method, path, division=division, body=sent_body)
        except ExactRequestError as exc:
            if action.verb is Verb.DELETE and exc.status_code == 404:
                return str(body[action.key])  # already gone: what a delete wants
            raise
    if action.verb is not Verb.CREATE:
        return str(body[action.key])
    echo = page_from_json(decode_json(response.content, path), path).rows[0]
    return key_of(action, echo)


def _finish(
    sessions: sessionmaker[Session], client: ExactClient, action: Action, division: int, record_key: str
) -> dict[str, Any]:
    """Read back and upsert (create/update), or mark the synced row deleted (delete)."""
    result: dict[str, Any] = {"action": action.name, "division": division, "key": record_key, "state": "succeeded"}
    with sessions() as session:
        if action.verb is Verb.DELETE:
            mark_synced_deleted(session, action, division, record_key)
            result["record"] = None
        else:
            record = get_record(client, action, division, record_key)
            if record is None:
                raise ActionRefusedError(f"{action.name}: Exact has no record {record_key} right after the write")
            upsert_synced(session, action, division, record_key, record)
            result["record"] = record
        session.commit()
        result["row"] = jsonable(synced_row(session, action, division, record_key))
    return result
