"""The whole path: sandbox over real HTTP -> client -> engine -> Postgres, through `execute_sync` (what the CLI's
`run` and the Celery task both call). Tables are compared with the sandbox's own records field by field."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, SalesInvoice, SalesInvoiceLine
from models.synced import SyncedRecord
from syncs.core.crypto import TokenCipher
from syncs.core.settings import Settings
from syncs.lifecycle.connections import add_connection, ensure_division
from syncs.sandbox import SandboxConfig, SandboxServer, SandboxState
from syncs.tokens.pair import TokenPair
from syncs.tokens.store import TokenStore
from tests.support.cadence import every_run_streams
from tests.support.clock import FakeClock
from worker.runs import execute_sync

CURRENT, SECOND = 124132, 124133
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
T = TypeVar("T", bound=SyncedRecord)


def exact_instant(value: str) -> datetime:
    """Independent reading of `/Date(ms)/`: the ms are Amsterdam wall time labelled as UTC."""
    wall = datetime.fromtimestamp(int(value[6:-2]) / 1000, tz=UTC).replace(tzinfo=None)
    return wall.replace(tzinfo=AMSTERDAM).astimezone(UTC)


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.000001"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[SandboxServer]:
    config = SandboxConfig(page_size=5, minutely_limit=None, daily_limit=None)
    with SandboxServer(SandboxState(config, clock=clock)) as server:
        yield server


@pytest.fixture
def run_settings(settings: Settings, sandbox: SandboxServer) -> Settings:
    return settings.model_copy(update={"exact_base_url": sandbox.base_url})


@pytest.fixture
def connection(run_settings: Settings, sandbox: SandboxServer, db: sessionmaker[Session], clock: FakeClock) -> str:
    issued = sandbox.state.issue_tokens()
    pair = TokenPair(issued["access_token"], issued["refresh_token"], clock.now(), float(issued["expires_in"]))
    assert run_settings.token_encryption_key is not None
    store = TokenStore(db, TokenCipher(run_settings.token_encryption_key.get_secret_value()))
    with db.begin() as session:
        created = add_connection(session, store, "acme", "nl", pair, division=CURRENT)
        ensure_division(session, created.id, SECOND, is_current=False)
    return "acme"


def sync(settings: Settings, name: str, clock: FakeClock) -> dict[str, Any]:
    outcome = execute_sync(settings, name, trigger="test", clock=clock)
    assert outcome.status == "succeeded", outcome.error
    return outcome.as_dict()


def live_rows(session: Session, table: type[T]) -> dict[uuid.UUID, T]:
    return {row.id: row for row in session.scalars(select(table).where(table.deleted_at.is_(None)))}


def assert_tables_equal_source(db: sessionmaker[Session], state: SandboxState) -> None:
    with db() as session:
        accounts = live_rows(session, Account)
        invoices = live_rows(session, SalesInvoice)
        lines = live_rows(session, SalesInvoiceLine)
    source_accounts = [a for division in (CURRENT, SECOND) for a in state.accounts(division)]
    source_invoices = [i for division in (CURRENT, SECOND) for i in state.invoices(division)]
    assert set(accounts) == {uuid.UUID(a["ID"]) for a in source_accounts}
    for source in source_accounts:
        row = accounts[uuid.UUID(source["ID"])]
        assert row.code == source["Code"].strip()
        assert (row.name, row.email, row.city) == (source["Name"], source["Email"], source["City"])
        flags = (source["IsSales"], source["IsSupplier"], source["Blocked"])
        assert (row.is_sales, row.is_supplier, row.blocked) == flags
        assert row.division == source["Division"] and row.timestamp == source["Timestamp"]
        assert row.modified == exact_instant(source["Modified"])
        assert row.raw["Code"] == source["Code"] and "__metadata" not in row.raw
    assert set(invoices) == {uuid.UUID(i["InvoiceID"]) for i in source_invoices}
    assert set(lines) == {uuid.UUID(line["ID"]) for i in source_invoices for line in i["Lines"]}
    for source in source_invoices:
        invoice = invoices[uuid.UUID(source["InvoiceID"])]
        assert invoice.invoice_number == source["InvoiceNumber"]
        assert invoice.invoice_date == exact_instant(source["InvoiceDate"]).astimezone(AMSTERDAM).date()
        header = (source["Status"], source["Type"], source["Currency"])
        assert (invoice.status, invoice.type, invoice.currency) == header
        assert invoice.amount_dc == sum((money(line["AmountDC"]) for line in source["Lines"]), Decimal(0))
        for line in source["Lines"]:
            stored = lines[uuid.UUID(line["ID"])]
            assert stored.invoice_id == invoice.id
            assert (stored.line_number, stored.quantity) == (line["LineNumber"], money(line["Quantity"]))
            assert (stored.amount_dc, stored.vat_code) == (money(line["AmountDC"]), line["VATCode"])


def test_sync_change_and_delete_in_the_source_then_sync_again(
    run_settings: Settings, sandbox: SandboxServer, connection: str, db: sessionmaker[Session], clock: FakeClock
) -> None:
    state = sandbox.state
    first = sync(run_settings, connection, clock)
    assert first["divisions"] == [CURRENT, SECOND]
    assert first["inserted"] > 0 and first["deleted"] == 0
    assert_tables_equal_source(db, state)

    kept, gone = state.accounts(CURRENT)[:2]
    state.update_account(CURRENT, kept["ID"], Name="Renamed BV", City="Utrecht")
    state.delete_account(CURRENT, gone["ID"])
    added = state.create_account(SECOND, Name="New Customer", Code="42", IsSales=True)
    invoices = state.invoices(CURRENT)
    changed, deleted_invoice = invoices[0], invoices[1]
    state.update_invoice(CURRENT, changed["InvoiceID"], {"Status": 50, "YourRef": "PO-7"})
    state.update_invoice_line(CURRENT, changed["Lines"][0]["ID"], Quantity=7, AmountDC=70.0)
    state.delete_invoice(CURRENT, deleted_invoice["InvoiceID"])
    several = next(i for i in state.invoices(SECOND) + invoices[2:] if len(i["Lines"]) > 1)
    state.delete_invoice_line(several["Division"], several["Lines"][-1]["ID"])

    second = sync(run_settings, connection, clock)
    assert second["deleted"] >= 1 + 1 + len(deleted_invoice["Lines"]) + 1
    assert_tables_equal_source(db, state)
    with db() as session:
        account = session.get(Account, (CURRENT, uuid.UUID(gone["ID"])))
        assert account is not None and account.deleted_at is not None  # marked, never hard-deleted
        header = session.get(SalesInvoice, (CURRENT, uuid.UUID(deleted_invoice["InvoiceID"])))
        assert header is not None and header.deleted_at is not None
        line = session.get(SalesInvoiceLine, (several["Division"], uuid.UUID(several["Lines"][-1]["ID"])))
        assert line is not None and line.deleted_at is not None
        assert session.get(Account, (SECOND, uuid.UUID(added["ID"]))) is not None

    idle = sync(run_settings, connection, clock)
    assert (idle["inserted"], idle["updated"], idle["deleted"]) == (0, 0, 0)
    assert idle["api_calls"] == every_run_streams() * 2  # per division: only what is due every run


def test_a_sync_at_the_minutely_limit_waits_and_completes(
    run_settings: Settings, sandbox: SandboxServer, connection: str, db: sessionmaker[Session], clock: FakeClock
) -> None:
    sandbox.state.configure(minutely_limit=4, page_size=2)
    outcome = sync(run_settings, connection, clock)
    assert outcome["api_calls"] > 4  # more calls than one minute allows...
    assert any(wait > 0 for wait in clock.slept)  # ...so it waited for a reset instead of failing
    assert_tables_equal_source(db, sandbox.state)
    counters = sandbox.state.counters.as_dict()
    for division, windows in counters["http_429_per_window"].items():
        assert all(count <= 1 for count in windows.values()), (division, windows)
