"""Every declared action through each way in, by one generic test over the declarations (tests.support.actions
makes the payloads): success with read-your-writes (the synced row holds what was sent before any sync, and the
next sync leaves it unchanged), the same key answering its first result, a validation failure that makes no call
(the sandbox's request count), and a timeout after the sandbox stored the write followed by a retry that creates
nothing twice."""

from __future__ import annotations

import base64
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from syncs.actions.build import line_table
from syncs.actions.catalog import ACTIONS
from syncs.actions.declaration import Action, Verb
from syncs.actions.validate import ActionValidationError
from syncs.core.errors import AmbiguousWriteError
from syncs.core.settings import Settings
from syncs.entities.catalog import CATALOG
from syncs.entities.declaration import snake
from syncs.sandbox.server import SandboxServer
from tests.support.actions import columns, held, invalid, payload
from tests.support.cli import CliInvoke
from tests.worker.actions.conftest import SYNCED, Way, calls, content, writes
from tests.worker.conftest import CURRENT
from worker.runs import execute_sync

EVERY = sorted(ACTIONS.values(), key=lambda action: (action.verb is Verb.DELETE, action.name))  # deletes last
WRITES = [action for action in EVERY if action.writes]


def _same(stored: Any, sent: Any) -> bool:
    if isinstance(stored, Decimal | float | int) and not isinstance(stored, bool):
        return float(stored) == float(sent)
    return str(stored).strip() == str(sent)


def _synced_lines(db: sessionmaker[Session], action: Action, key: str) -> int | None:
    """How many live lines of the document its lines' table holds (None: the lines are not synced)."""
    lines = action.record_lines
    if lines is None or not (lines.entity or CATALOG[action.entity or ""].header_of):
        return None
    table = line_table(lines.entity or action.entity or "").name
    with db() as session:
        found: int = session.scalar(
            text(f"SELECT count(*) FROM {table} WHERE division = :d AND {snake(action.key)} = :k "
                 "AND deleted_at IS NULL"), {"d": CURRENT, "k": key},
        )  # fmt: skip
    return found


def check_action(
    way: Way, action: Action, sandbox: SandboxServer, db: sessionmaker[Session], settings: Settings
) -> dict[str, Any]:
    sent = payload(sandbox, action)
    if action.verb is Verb.LIST:
        result = way(action.name, sent, None)
        assert result["state"] == "succeeded" and result["records"], result
        assert set(str(action.select).split(",")) <= set(result["records"][0])
        return result
    before = len(held(sandbox, action))
    result = way(action.name, sent, None)
    assert result["state"] == "succeeded", result
    key = result["key"]
    expected = {Verb.CREATE: before + 1, Verb.ATTACH: before + 1, Verb.DELETE: before - 1}.get(action.verb, before)
    assert len(held(sandbox, action)) == expected
    row = content(db, action.entity or "", key)
    assert row is not None
    if action.verb is Verb.DELETE:
        assert row["deleted_at"] is not None and key not in held(sandbox, action)
    else:
        assert result["record"][action.key] == key and result["row"]["id"] == key
        for column, given in columns(action, sent).items():  # read-your-writes, before any sync
            assert _same(row[column], given), (column, row[column], given)
        if action.lines is not None:
            assert _synced_lines(db, action, key) in (None, len(sent[action.lines.name]))
        if action.verb is Verb.ATTACH:
            check_attached(db, result, sent)
    if action.writes:
        synced = execute_sync(settings, "acme", entities=SYNCED)
        assert content(db, action.entity or "", key) == row  # the next sync finds it unchanged
        counted = synced.rows_by_entity.get(action.entity or "", {})
        assert counted.get("updated", 0) == 0, counted  # and says so: no change recorded or notified
        again = way(action.name, sent, None)  # the same (derived) key: the first result, nothing sent
        assert again["key"] == key and again["replayed"] and len(held(sandbox, action)) == expected
    return result


def check_attached(db: sessionmaker[Session], result: dict[str, Any], sent: dict[str, Any]) -> None:
    """The document and the file's metadata are in their synced tables at once; the invoice names the document."""
    document, attachment = result["document"], result["attachment"]
    assert result["record"]["Document"] == document["ID"] and "Attachment" not in attachment
    file = content(db, "document_attachments", attachment["ID"])
    assert file is not None and file["document"] == uuid.UUID(document["ID"]) and file["file_name"] == sent["FileName"]
    assert float(file["file_size"]) == len(base64.b64decode(sent["Attachment"]))
    stored = content(db, "documents", document["ID"])
    assert stored is not None and stored["subject"] == sent["Subject"]


def check_refusal(action: Action, sandbox: SandboxServer, refuse: Any) -> None:
    bad, named = invalid(action)
    before = calls(sandbox)
    errors = refuse(action.name, bad)
    assert calls(sandbox) == before, "a refused payload made a call"
    assert named <= set(errors), (named, errors)


@pytest.mark.parametrize("action", EVERY, ids=lambda action: action.name)
def test_python_api(
    action: Action, by_python: Way, acme: Settings, sandbox: SandboxServer, db: sessionmaker[Session]
) -> None:
    check_action(by_python, action, sandbox, db, acme)

    def refuse(name: str, bad: dict[str, Any]) -> dict[str, str]:
        with pytest.raises(ActionValidationError) as refused:
            by_python(name, bad, None)
        return refused.value.errors

    if action.params:
        check_refusal(action, sandbox, refuse)


@pytest.mark.parametrize("action", EVERY, ids=lambda action: action.name)
def test_cli(
    action: Action, by_cli: Way, cli: CliInvoke, acme: Settings, sandbox: SandboxServer, db: sessionmaker[Session]
) -> None:
    check_action(by_cli, action, sandbox, db, acme)

    def refuse(name: str, bad: dict[str, Any]) -> dict[str, str]:
        import json

        result = cli("action", name, "acme", "--division", str(CURRENT), "--json", json.dumps(bad))
        assert result.exit_code == 2, result.output
        return {line.split(":")[0].strip(): line for line in result.stderr.splitlines() if line.startswith("  ")}

    if action.params:
        check_refusal(action, sandbox, refuse)


@pytest.mark.parametrize("action", WRITES, ids=lambda action: action.name)
def test_timeout_after_store_then_retry_creates_nothing_twice(
    action: Action, by_python: Way, sandbox: SandboxServer, db: sessionmaker[Session]
) -> None:
    sent = payload(sandbox, action)
    before = held(sandbox, action)
    sandbox.state.configure(store_then_timeout=1)
    with pytest.raises(AmbiguousWriteError, match="idempotency key derived-"):
        by_python(action.name, sent, None)
    stored = held(sandbox, action)
    sent_writes = writes(sandbox)
    result = by_python(action.name, sent, None)
    assert held(sandbox, action).keys() == stored.keys()  # nothing created (or deleted) twice
    if action.verb is Verb.ATTACH:  # the document was found by its marker: only the later steps were sent
        assert result["recovered"] and writes(sandbox) == sent_writes + 2
    elif action.verb is not Verb.UPDATE:
        assert result["recovered"] and writes(sandbox) == sent_writes  # found by its marker / key: not sent again
    if action.verb is not Verb.UPDATE:
        assert stored.keys() != before.keys()
    row = content(db, action.entity or "", result["key"])
    assert row is not None
    with db() as session:
        state, attempts = session.execute(text("SELECT state, attempts FROM actions")).one()
    assert state == "succeeded" and attempts == (2 if action.verb is Verb.UPDATE else 1)


def test_every_action_through_the_celery_task(
    by_task: Way, acme: Settings, sandbox: SandboxServer, db: sessionmaker[Session]
) -> None:
    """One real worker runs every action; each write first times out after the sandbox stored it, and the task's
    own retry (same key) looks before it sends, so nothing is written twice."""
    for action in EVERY:
        if action.writes:
            sandbox.state.configure(store_then_timeout=1)
        result = check_action(by_task, action, sandbox, db, acme)
        if action.verb in (Verb.CREATE, Verb.DELETE, Verb.ATTACH):
            assert result["recovered"] is True, action.name
    for action in (action for action in EVERY if action.params):
        check_refusal(action, sandbox, lambda name, bad: by_task(name, bad, None)["errors"])
