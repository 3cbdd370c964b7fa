"""The rules of actions beyond the generic test of every action (test_every_action.py): one message per bad field,
a key reused with another payload, an invoice that is no longer open, a journal looked up or asked for, a write our
own budget refuses, and the
CLI's `@file` payloads, lost answers and `--list`."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import ActionRecord, ActionState
from syncs.actions.catalog import ACTIONS, ATTACHMENT_MAX_BYTES
from syncs.actions.validate import ActionValidationError
from syncs.core.clock import SYSTEM_CLOCK
from syncs.core.errors import RateLimitedError
from syncs.core.settings import Settings, get_settings
from syncs.limits.ratelimit import RateGate
from syncs.sandbox.server import SandboxServer
from tests.support.cli import CliInvoke
from tests.worker.actions.conftest import Way, calls
from tests.worker.conftest import CURRENT
from worker.runs import execute_sync


def _customer(sandbox: SandboxServer) -> str:
    return str(sandbox.state.accounts(CURRENT)[0]["ID"])


def _open_invoice(sandbox: SandboxServer) -> str:
    return str(next(i for i in sandbox.state.invoices(CURRENT) if i["Status"] == 20)["InvoiceID"])


def _invoice_payload(sandbox: SandboxServer) -> dict[str, Any]:
    gl_account = str(sandbox.state.records(CURRENT, "gl_accounts")[0]["ID"])
    return {
        "Journal": "70",
        "OrderedBy": _customer(sandbox),
        "InvoiceDate": "2026-11-30",
        "YourRef": "PO-1",
        "SalesInvoiceLines": [
            {"GLAccount": gl_account, "Quantity": 2, "NetPrice": 12.5, "Description": "consulting"},
            {"GLAccount": gl_account, "Quantity": "1", "NetPrice": "100", "Description": "licence"},
        ],
    }


def invalid_payloads(sandbox: SandboxServer) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    customer = _customer(sandbox)
    return [
        ("accounts.create", {"City": "Delft", "Status": "X", "Nmae": "typo"},
         {"Name": "required", "Status": "must be one of A, S, P, C, not 'X'", "Nmae": "unknown field"}),
        ("accounts.update", {"ID": "not-a-guid", "IsSales": "yes"},
         {"ID": "not a GUID: 'not-a-guid'", "IsSales": "must be true or false, not 'yes'"}),
        ("accounts.update", {"ID": str(uuid.uuid4())}, {"ID": "no accounts record"}),
        ("accounts.delete", {"ID": str(uuid.uuid4())}, {"ID": "no accounts record"}),  # a typo, another division
        ("sales_invoices.create", {"OrderedBy": str(uuid.uuid4()), "InvoiceDate": "30-11-2026",
                                   "SalesInvoiceLines": []},
         {"OrderedBy": "no accounts record", "InvoiceDate": "must be a date",
          "SalesInvoiceLines": "needs 1 to 500 lines, got 0"}),
        ("sales_invoices.create", {"Journal": "70", "OrderedBy": customer,
                                   "SalesInvoiceLines": [{"Quantity": "many"}]},
         {"SalesInvoiceLines[0].Quantity": "must be a number",
          "SalesInvoiceLines[0].Item": "one of Item or GLAccount"}),
    ]  # fmt: skip


def test_validation_failures_make_no_call(by_python: Way, sandbox: SandboxServer) -> None:
    for action, payload, expected in invalid_payloads(sandbox):
        before = calls(sandbox)
        with pytest.raises(ActionValidationError) as refused:
            by_python(action, payload, None)
        assert calls(sandbox) == before, action
        assert set(refused.value.errors) == set(expected), refused.value.errors
        for field, start in expected.items():
            assert refused.value.errors[field].startswith(start), (field, refused.value.errors[field])


def test_a_record_deleted_already_may_be_deleted_again(by_python: Way, sandbox: SandboxServer) -> None:
    """Only keys the synced table never held are refused: deleting twice (another key) is harmless."""
    key = by_python("accounts.create", {"Name": "Short-lived"}, "made")["key"]
    first = by_python("accounts.delete", {"ID": key}, "gone-1")
    again = by_python("accounts.delete", {"ID": key}, "gone-2")
    assert first["state"] == again["state"] == "succeeded" and not again["replayed"]
    assert first["row"]["deleted_at"] == again["row"]["deleted_at"] is not None


def test_same_key_with_another_payload_is_refused(by_python: Way, sandbox: SandboxServer) -> None:
    first = by_python("accounts.create", {"Name": "One"}, "my-key-1")
    assert first["idempotency_key"] == "my-key-1" and first["marker"] == "exact-sync:my-key-1"
    with pytest.raises(Exception, match="idempotency key 'my-key-1' was used for another write"):
        by_python("accounts.create", {"Name": "Two"}, "my-key-1")
    second = by_python("accounts.create", {"Name": "One"}, "my-key-2")  # a new key: a second record
    assert second["key"] != first["key"]


def test_update_of_a_processed_invoice_is_refused(by_python: Way, sandbox: SandboxServer) -> None:
    invoice = _open_invoice(sandbox)
    sandbox.state.update_invoice(CURRENT, invoice, {"Status": 50})
    with pytest.raises(Exception, match="Status is 50; only 20 can change"):
        by_python("sales_invoices.update", {"InvoiceID": invoice, "YourRef": "late"}, None)
    assert sandbox.state.invoice(CURRENT, invoice)["YourRef"] != "late"


def test_a_journal_left_empty_is_looked_up_and_named(by_python: Way, acme: Settings, sandbox: SandboxServer) -> None:
    payload = {k: v for k, v in _invoice_payload(sandbox).items() if k != "Journal"}
    sales = [j for j in sandbox.state.records(CURRENT, "journals") if j["Type"] == 20]
    assert len(sales) == 1
    result = by_python("sales_invoices.create", payload, None)
    assert result["chosen"] == {"Journal": f"{sales[0]['Code']}: the division's only sales journal"}
    assert sandbox.state.invoice(CURRENT, result["key"])["Journal"] == sales[0]["Code"]
    sandbox.state.create_record(CURRENT, "journals", Code="0099", Description="Second sales", Type=20)
    execute_sync(acme, "acme", entities=["journals"])
    before = calls(sandbox)
    with pytest.raises(ActionValidationError) as refused:
        by_python("sales_invoices.create", {**payload, "YourRef": "another"}, None)
    assert calls(sandbox) == before
    assert refused.value.errors == {"Journal": f"required: the division has 2 of them ({sales[0]['Code']}, 0099); "
                                    "choose one"}  # fmt: skip


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
    for name in ACTIONS:  # every action, with its fields
        assert name in listed.stdout, name


def test_a_file_too_large_or_not_base64_is_refused_before_any_call(by_python: Way, sandbox: SandboxServer) -> None:
    payload = {"InvoiceID": _open_invoice(sandbox), "FileName": "big.pdf", "Type": 10, "Subject": "Invoice PDF"}
    too_large = base64.b64encode(bytes(ATTACHMENT_MAX_BYTES + 1)).decode()
    before = calls(sandbox)
    for attachment, message in ((too_large, f"at most {ATTACHMENT_MAX_BYTES} bytes once decoded"),
                                ("%%% not base64", "must be base64 text")):  # fmt: skip
        with pytest.raises(ActionValidationError) as refused:
            by_python("sales_invoices.attach_file", {**payload, "Attachment": attachment}, None)
        assert refused.value.errors["Attachment"].startswith(message), refused.value.errors
    assert calls(sandbox) == before
    fits = base64.b64encode(bytes(ATTACHMENT_MAX_BYTES)).decode()
    attached = by_python("sales_invoices.attach_file", {**payload, "Attachment": fits}, None)
    assert attached["attachment"]["FileSize"] == ATTACHMENT_MAX_BYTES


def test_a_write_our_budget_refuses_never_leaves_and_says_when_it_can_run(
    by_python: Way, acme: Settings, sandbox: SandboxServer, db: sessionmaker[Session], redis_client: Any
) -> None:
    """The division's daily budget is spent (as Exact's last answer said): the write is refused before it leaves,
    with the reset as `retry_at`; its ledger row is back to `requested`, and the same key runs once budget is back."""
    gate = RateGate(redis_client, acme.redis_key_prefix, SYSTEM_CLOCK)
    reset = int(time.time()) + 3600
    redis_client.delete(gate.key(str(CURRENT)))  # what the sync's answers said, replaced by a spent day
    spent = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset * 1000)}
    gate.observe(str(CURRENT), 200, spent)
    before = calls(sandbox)
    with pytest.raises(RateLimitedError) as refused:
        by_python("accounts.create", {"Name": "Later BV"}, "later")
    assert refused.value.retry_at == pytest.approx(reset, abs=1) and calls(sandbox) == before
    with db() as session:
        row = session.scalars(select(ActionRecord).where(ActionRecord.idempotency_key == "later")).one()
        assert row.state is ActionState.REQUESTED and "RateLimitedError" in str(row.error)

    redis_client.delete(gate.key(str(CURRENT)))  # budget back
    done = by_python("accounts.create", {"Name": "Later BV"}, "later")
    assert done["state"] == "succeeded" and not done["recovered"]
    assert [a for a in sandbox.state.accounts(CURRENT) if a["Name"] == "Later BV"] != []
