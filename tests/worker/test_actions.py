"""Actions against the sandbox through the three ways in (Python API, CLI, Celery task with a real worker):
success with read-your-writes, validation that makes no call, a timeout after Exact stored the write followed
by a retry that creates nothing twice, and the same key answering its first result."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import Result

from syncs.actions.perform import perform
from syncs.actions.validate import ActionValidationError
from syncs.core.errors import AmbiguousWriteError
from syncs.core.settings import Settings, get_settings
from syncs.sandbox.server import SandboxServer
from tests.support.cli import CliInvoke, settings_env
from tests.worker.conftest import CELERY, CURRENT, ROOT, stop
from worker.app import ACTION_TASK, create_app
from worker.runs import execute_sync

SYNCED = ["accounts", "sales_invoices", "gl_accounts", "contacts", "items", "journals"]  # what the actions refer to
VOLATILE = {"timestamp", "synced_at"}  # what a later sync may change without the row's content changing


def calls(sandbox: SandboxServer) -> int:
    return sum(sandbox.state.counters.api_calls.values())


def writes(sandbox: SandboxServer) -> int:
    return sum(sandbox.state.counters.writes.values())


def content(db: sessionmaker[Session], table: str, key: str) -> dict[str, Any] | None:
    with db() as session:
        row = session.execute(
            text(f"SELECT * FROM {table} WHERE division = :d AND id = :k"), {"d": CURRENT, "k": uuid.UUID(key)}
        ).mappings().first()  # fmt: skip
    if row is None:
        return None
    found = {k: v for k, v in row.items() if k not in VOLATILE}
    if isinstance(found.get("raw"), dict):  # Exact's row as received: its Timestamp is the row version
        found["raw"] = {k: v for k, v in found["raw"].items() if k not in ("Timestamp", "__metadata")}
    return found


@dataclass(frozen=True)
class Case:
    action: str
    table: str
    payload: Callable[[SandboxServer], dict[str, Any]]
    check: Callable[[dict[str, Any]], bool]  # on the synced row
    creates: Callable[[SandboxServer], int]  # how many records of its kind the sandbox holds


def _customer(sandbox: SandboxServer) -> str:
    return str(sandbox.state.accounts(CURRENT)[0]["ID"])


def _open_invoice(sandbox: SandboxServer) -> str:
    return str(next(i for i in sandbox.state.invoices(CURRENT) if i["Status"] == 20)["InvoiceID"])


def _gl_account(sandbox: SandboxServer) -> str:
    return str(sandbox.state.records(CURRENT, "gl_accounts")[0]["ID"])


def _invoice_payload(sandbox: SandboxServer) -> dict[str, Any]:
    return {
        "Journal": "70",
        "OrderedBy": _customer(sandbox),
        "InvoiceDate": "2026-11-30",
        "YourRef": "PO-1",
        "SalesInvoiceLines": [
            {"GLAccount": _gl_account(sandbox), "Quantity": 2, "NetPrice": 12.5, "Description": "consulting"},
            {"GLAccount": _gl_account(sandbox), "Quantity": "1", "NetPrice": "100", "Description": "licence"},
        ],
    }


def _first(entity: str) -> Callable[[SandboxServer], str]:
    return lambda sandbox: str(sandbox.state.records(CURRENT, entity)[0]["ID"])


def _count(entity: str) -> Callable[[SandboxServer], int]:
    return lambda sandbox: len(sandbox.state.records(CURRENT, entity))


def _accounts(sandbox: SandboxServer) -> int:
    return len(sandbox.state.accounts(CURRENT))


def _invoices(sandbox: SandboxServer) -> int:
    return len(sandbox.state.invoices(CURRENT))


CASES = [
    Case(
        "accounts.create", "accounts", lambda s: {"Name": "Written BV", "City": "Delft", "IsSupplier": True},
        lambda row: (row["name"], row["city"], row["is_supplier"]) == ("Written BV", "Delft", True), _accounts,
    ),
    Case(
        "accounts.update", "accounts", lambda s: {"ID": _customer(s), "City": "Gouda", "Email": "x@example.com"},
        lambda row: (row["city"], row["email"]) == ("Gouda", "x@example.com"), _accounts,
    ),
    Case(
        "accounts.delete", "accounts", lambda s: {"ID": _customer(s)},
        lambda row: row["deleted_at"] is not None, _accounts,
    ),
    Case(
        "sales_invoices.create", "sales_invoices", _invoice_payload,
        lambda row: (row["your_ref"], float(row["amount_fc_excl_vat"])) == ("PO-1", 125.0), _invoices,
    ),
    Case(
        "contacts.create", "contacts", lambda s: {"Account": _customer(s), "FirstName": "Ada", "LastName": "Lovelace"},
        lambda row: (row["first_name"], row["last_name"]) == ("Ada", "Lovelace"), _count("contacts"),
    ),
    Case(
        "contacts.update", "contacts", lambda s: {"ID": _first("contacts")(s), "Email": "ada@example.com"},
        lambda row: row["email"] == "ada@example.com", _count("contacts"),
    ),
    Case(
        "contacts.delete", "contacts", lambda s: {"ID": _first("contacts")(s)},
        lambda row: row["deleted_at"] is not None, _count("contacts"),
    ),
    Case(
        "items.create", "items", lambda s: {"Code": "WIDGET-9", "Description": "Widget", "IsSalesItem": True},
        lambda row: (row["code"], row["description"]) == ("WIDGET-9", "Widget"), _count("items"),
    ),
    Case(
        "items.update", "items", lambda s: {"ID": _first("items")(s), "Description": "Renamed"},
        lambda row: row["description"] == "Renamed", _count("items"),
    ),
    Case(
        "items.delete", "items", lambda s: {"ID": _first("items")(s)},
        lambda row: row["deleted_at"] is not None, _count("items"),
    ),
    Case(
        "sales_invoices.update", "sales_invoices", lambda s: {"InvoiceID": _open_invoice(s), "YourRef": "changed"},
        lambda row: row["your_ref"] == "changed", _invoices,
    ),
]  # fmt: skip
IDS = [case.action for case in CASES]


@pytest.fixture
def acme(
    sandbox: SandboxServer, sandbox_settings: Settings, add_sandbox_connection: Callable[..., Result]
) -> Settings:
    """A connection whose division is synced (referenced records exist locally), with a 1 s HTTP timeout."""
    add_sandbox_connection("acme", "--division", str(CURRENT))
    execute_sync(sandbox_settings, "acme", entities=SYNCED)
    sandbox.state.configure(write_timeout_delay=1.5)
    return sandbox_settings.model_copy(update={"http_timeout_seconds": 1.0})


Way = Callable[[Settings, str, dict[str, Any], str | None], dict[str, Any]]


def by_python(settings: Settings, action: str, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
    return perform(settings, "acme", action, payload, division=CURRENT, idempotency_key=key)


def check_case(
    case: Case, way: Way, settings: Settings, sandbox: SandboxServer, db: sessionmaker[Session]
) -> dict[str, Any]:
    payload = case.payload(sandbox)
    before = case.creates(sandbox)
    result = way(settings, case.action, payload, None)
    assert result["state"] == "succeeded" and result["idempotency_key"].startswith("derived-")
    row = content(db, case.table, result["key"])
    assert row is not None
    assert case.check(row), row  # read-your-writes: in the synced table before any sync
    expected = {"create": before + 1, "delete": before - 1}.get(case.action.split(".")[1], before)
    assert case.creates(sandbox) == expected
    if not case.action.endswith("delete"):
        assert result["record"][("InvoiceID" if "invoice" in case.action else "ID")] == result["key"]
        assert result["row"]["id"] == result["key"]
    execute_sync(settings, "acme", entities=SYNCED)
    assert content(db, case.table, result["key"]) == row  # the next sync finds it unchanged
    again = way(settings, case.action, payload, None)  # same derived key: the first result, nothing sent
    assert again["key"] == result["key"] and again["replayed"] and case.creates(sandbox) == expected
    return result


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_python_api(acme: Settings, sandbox: SandboxServer, db: sessionmaker[Session], case: Case) -> None:
    check_case(case, by_python, acme, sandbox, db)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_python_timeout_after_store_then_retry_creates_nothing_twice(
    acme: Settings, sandbox: SandboxServer, db: sessionmaker[Session], case: Case
) -> None:
    payload = case.payload(sandbox)
    before = case.creates(sandbox)
    sandbox.state.configure(store_then_timeout=1)
    with pytest.raises(AmbiguousWriteError, match="idempotency key derived-"):
        by_python(acme, case.action, payload, None)
    stored = case.creates(sandbox)
    sent = writes(sandbox)
    result = by_python(acme, case.action, payload, None)
    assert case.creates(sandbox) == stored  # nothing created (or deleted) twice
    if case.action.endswith(("create", "delete")):
        assert result["recovered"] and writes(sandbox) == sent  # found by its marker / key: not sent again
        assert stored != before
    row = content(db, case.table, result["key"])
    assert row is not None
    assert case.check(row), row
    with db() as session:
        state, attempts = session.execute(text("SELECT state, attempts FROM actions")).one()
    assert state == "succeeded" and attempts == (2 if case.action.endswith("update") else 1)


def invalid_payloads(sandbox: SandboxServer) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    customer = _customer(sandbox)
    return [
        ("accounts.create", {"City": "Delft", "Status": "X", "Nmae": "typo"},
         {"Name": "required", "Status": "must be one of A, S, P, C, not 'X'", "Nmae": "unknown field"}),
        ("accounts.update", {"ID": "not-a-guid", "IsSales": "yes"},
         {"ID": "not a GUID: 'not-a-guid'", "IsSales": "must be true or false, not 'yes'"}),
        ("accounts.update", {"ID": str(uuid.uuid4())}, {"ID": "no accounts record"}),
        ("sales_invoices.create", {"OrderedBy": str(uuid.uuid4()), "InvoiceDate": "30-11-2026",
                                   "SalesInvoiceLines": []},
         {"OrderedBy": "no accounts record", "InvoiceDate": "must be a date",
          "SalesInvoiceLines": "needs 1 to 500 lines, got 0"}),
        ("sales_invoices.create", {"Journal": "70", "OrderedBy": customer,
                                   "SalesInvoiceLines": [{"Quantity": "many"}]},
         {"SalesInvoiceLines[0].Quantity": "must be a number",
          "SalesInvoiceLines[0].Item": "one of Item or GLAccount"}),
    ]  # fmt: skip


def test_validation_failures_make_no_call(acme: Settings, sandbox: SandboxServer) -> None:
    for action, payload, expected in invalid_payloads(sandbox):
        before = calls(sandbox)
        with pytest.raises(ActionValidationError) as refused:
            by_python(acme, action, payload, None)
        assert calls(sandbox) == before, action
        assert set(refused.value.errors) == set(expected), refused.value.errors
        for field, start in expected.items():
            assert refused.value.errors[field].startswith(start), (field, refused.value.errors[field])


def test_same_key_with_another_payload_is_refused(acme: Settings, sandbox: SandboxServer) -> None:
    first = by_python(acme, "accounts.create", {"Name": "One"}, "my-key-1")
    assert first["idempotency_key"] == "my-key-1" and first["marker"] == "exact-sync:my-key-1"
    with pytest.raises(Exception, match="idempotency key 'my-key-1' was used for another write"):
        by_python(acme, "accounts.create", {"Name": "Two"}, "my-key-1")
    second = by_python(acme, "accounts.create", {"Name": "One"}, "my-key-2")  # a new key: a second record
    assert second["key"] != first["key"]


def test_update_of_a_processed_invoice_is_refused(acme: Settings, sandbox: SandboxServer) -> None:
    invoice = _open_invoice(sandbox)
    sandbox.state.update_invoice(CURRENT, invoice, {"Status": 50})
    with pytest.raises(Exception, match="Status is 50; only 20 can change"):
        by_python(acme, "sales_invoices.update", {"InvoiceID": invoice, "YourRef": "late"}, None)
    assert sandbox.state.invoice(CURRENT, invoice)["YourRef"] != "late"


def test_a_journal_left_empty_is_looked_up_and_named(acme: Settings, sandbox: SandboxServer) -> None:
    payload = {k: v for k, v in _invoice_payload(sandbox).items() if k != "Journal"}
    sales = [j for j in sandbox.state.records(CURRENT, "journals") if j["Type"] == 20]
    assert len(sales) == 1
    result = by_python(acme, "sales_invoices.create", payload, None)
    assert result["chosen"] == {"Journal": f"{sales[0]['Code']}: the division's only sales journal"}
    assert sandbox.state.invoice(CURRENT, result["key"])["Journal"] == sales[0]["Code"]
    sandbox.state.create_record(CURRENT, "journals", Code="0099", Description="Second sales", Type=20)
    execute_sync(acme, "acme", entities=["journals"])
    before = calls(sandbox)
    with pytest.raises(ActionValidationError) as refused:
        by_python(acme, "sales_invoices.create", {**payload, "YourRef": "another"}, None)
    assert calls(sandbox) == before
    assert refused.value.errors == {"Journal": f"required: the division has 2 of them ({sales[0]['Code']}, 0099); "
                                    "choose one"}  # fmt: skip


def test_get_and_list(acme: Settings, sandbox: SandboxServer) -> None:
    customer = _customer(sandbox)
    got = by_python(acme, "accounts.get", {"ID": customer}, None)
    assert got["record"]["ID"] == customer and got["row"]["id"] == customer
    listed = perform(acme, "acme", "divisions.list", {}, division=CURRENT)
    assert CURRENT in [d["Code"] for d in listed["records"]]


# -- the CLI ------------------------------------------------------------------------------------------------


def by_cli(cli: CliInvoke) -> Way:
    def way(settings: Settings, action: str, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
        extra = ["--key", key] if key else []
        result = cli("action", action, "acme", "--division", str(CURRENT), "--json", json.dumps(payload), *extra)
        assert result.exit_code == 0, result.output
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    return way


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli(
    acme: Settings, cli: CliInvoke, sandbox: SandboxServer, db: sessionmaker[Session], case: Case,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()
    check_case(case, by_cli(cli), acme, sandbox, db)


def test_cli_validation_timeout_retry_and_list(
    acme: Settings, cli: CliInvoke, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()
    before = calls(sandbox)
    refused = cli("action", "accounts.create", "acme", "--division", str(CURRENT), "--json", '{"City": 1}')
    assert refused.exit_code == 2 and calls(sandbox) == before
    assert "Name: required" in refused.stderr and "City: must be text" in refused.stderr
    payload = tmp_path / "account.json"
    payload.write_text(json.dumps({"Name": "Timeout BV"}))
    sandbox.state.configure(store_then_timeout=1)
    args = ("action", "accounts.create", "acme", "--division", str(CURRENT), "--json", f"@{payload}")
    lost = cli(*args)
    assert lost.exit_code == 1 and "AmbiguousWriteError" in lost.stderr and "idempotency key" in lost.stderr
    retried = cli(*args)
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout)["recovered"] is True
    assert [a["Name"] for a in sandbox.state.accounts(CURRENT)].count("Timeout BV") == 1
    listed = cli("action", "--list")
    for name in ("accounts.create", "sales_invoices.create", "purchase_entries.create", "journals.list"):
        assert name in listed.stdout


# -- the Celery task, through a real worker -----------------------------------------------------------------


@pytest.fixture
def action_worker(acme: Settings) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        **settings_env(acme, HTTP_TIMEOUT_SECONDS="1", ACTION_RETRY_SECONDS="0.2"),
    }
    process = subprocess.Popen(
        [CELERY, "-A", "worker.app", "worker", "-Q", acme.celery_queue, "--pool", "prefork", "--concurrency", "1",
         "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"{acme.celery_queue}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield process
    stop(process)


def test_celery_task(
    acme: Settings, sandbox: SandboxServer, db: sessionmaker[Session], action_worker: subprocess.Popen[bytes]
) -> None:
    app = create_app(acme)

    def by_task(settings: Settings, action: str, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
        sent = app.send_task(ACTION_TASK, args=["acme", action, payload], kwargs={"division": CURRENT,
                             "idempotency_key": key}, queue=acme.celery_queue)  # fmt: skip
        result: dict[str, Any] = sent.get(timeout=90)
        return result

    for case in CASES:
        check_case(case, by_task, acme, sandbox, db)
    before = calls(sandbox)
    invalid = by_task(acme, "accounts.create", {"Name": ""}, None)
    assert invalid["state"] == "invalid" and invalid["errors"] == {"Name": "required"} and calls(sandbox) == before
    # A timeout after Exact stored the invoice: the task's own retry looks it up and sends nothing twice.
    invoices = _invoices(sandbox)
    sandbox.state.configure(store_then_timeout=1)
    created = by_task(acme, "sales_invoices.create", _invoice_payload(sandbox), "task-key-1")
    assert created["state"] == "succeeded" and created["recovered"] is True
    assert _invoices(sandbox) == invoices + 1
    assert content(db, "sales_invoices", created["key"]) is not None
