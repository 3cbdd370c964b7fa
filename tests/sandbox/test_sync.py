from __future__ import annotations

from datetime import UTC, date, datetime

import httpx

from syncs.sandbox.dates import exact_date, exact_datetime, parse_exact
from syncs.sandbox.odata import MANDATORY_FILTER, SELECT_REQUIRED
from syncs.sandbox.server import SandboxServer
from tests.sandbox.conftest import FIRST, LINE_SELECT, SECOND, follow, sync_params
from tests.support.clock import FakeClock

ACCOUNTS = f"/api/v1/{FIRST}/sync/CRM/Accounts"
INVOICES = f"/api/v1/{FIRST}/sync/SalesInvoice/SalesInvoices"
DELETED = f"/api/v1/{FIRST}/sync/Deleted"


def error_value(response: httpx.Response) -> str:
    value: str = response.json()["error"]["message"]["value"]
    return value


def test_pages_follow_absolute_next_links_to_the_end(sandbox: SandboxServer, api: httpx.Client) -> None:
    created = [sandbox.state.create_account(FIRST, Name=f"Customer {n}") for n in range(8)]
    pages = follow(api, ACCOUNTS, sync_params())
    assert [len(p) for p in pages] == [3, 3, 2]
    ids = [row["ID"] for page in pages for row in page]
    assert ids == [a["ID"] for a in created]
    first = api.get(ACCOUNTS, params=sync_params()).json()["d"]
    assert first["__next"].startswith(f"{sandbox.base_url}{ACCOUNTS}?")
    assert "$skiptoken=" in first["__next"]
    timestamps = [row["Timestamp"] for page in pages for row in page]
    assert timestamps == sorted(timestamps) and timestamps[0] > 2**31


def test_exact_last_page_has_no_next(sandbox: SandboxServer, api: httpx.Client) -> None:
    for n in range(6):
        sandbox.state.create_account(FIRST, Name=f"Customer {n}")
    assert [len(p) for p in follow(api, ACCOUNTS, sync_params())] == [3, 3]


def test_timestamp_filter_returns_only_newer_rows(sandbox: SandboxServer, api: httpx.Client) -> None:
    a, b, c = (sandbox.state.create_account(FIRST, Name=n) for n in "abc")
    rows = api.get(ACCOUNTS, params=sync_params(a["Timestamp"])).json()["d"]["results"]
    assert [r["ID"] for r in rows] == [b["ID"], c["ID"]]
    updated = sandbox.state.update_account(FIRST, a["ID"], Name="a2")
    rows = api.get(ACCOUNTS, params=sync_params(c["Timestamp"])).json()["d"]["results"]
    assert [(r["ID"], r["Name"], r["Timestamp"]) for r in rows] == [(a["ID"], "a2", updated["Timestamp"])]


def test_select_and_filter_are_required(sandbox: SandboxServer, api: httpx.Client) -> None:
    sandbox.state.create_account(FIRST, Name="x", Code=7)
    no_filter = api.get(ACCOUNTS, params={"$select": "ID"})
    assert no_filter.status_code == 400 and error_value(no_filter) == MANDATORY_FILTER
    for params in ({"$filter": "Timestamp gt 1L"}, {"$filter": "Timestamp gt 1L", "$select": "*"}):
        response = api.get(ACCOUNTS, params=params)
        assert response.status_code == 400 and error_value(response) == SELECT_REQUIRED
    assert api.get(ACCOUNTS, params={"$filter": "Timestamp gt 1L", "$select": "Nope"}).status_code == 400
    params = {"$filter": "Timestamp gt 1L and Name ne 'y'", "$select": "ID,Code"}
    row = api.get(ACCOUNTS, params=params).json()["d"]["results"][0]
    assert set(row) == {"__metadata", "ID", "Code"}
    assert row["Code"] == "                 7"
    assert set(row["__metadata"]) == {"uri", "type"}


def test_sales_invoices_sync_has_one_row_per_line(sandbox: SandboxServer, api: httpx.Client) -> None:
    state = sandbox.state
    customer = state.create_account(FIRST, Name="Customer")
    invoice = state.create_invoice(
        FIRST,
        {"InvoiceTo": customer["ID"], "OrderedBy": customer["ID"], "InvoiceDate": "2024-07-01"},
        [{"Quantity": 2, "NetPrice": 10}, {"Quantity": 1, "NetPrice": 5.5}, {"Quantity": 3, "NetPrice": 1}],
    )
    rows = [r for page in follow(api, INVOICES, sync_params(select=LINE_SELECT)) for r in page]
    assert len(rows) == 3
    assert {r["InvoiceID"] for r in rows} == {invoice["InvoiceID"]}
    assert [r["LineNumber"] for r in rows] == [1, 2, 3]
    assert {r["AmountFCExclVat"] for r in rows} == {28.5}
    assert {r["InvoiceDate"] for r in rows} == {"/Date(1719792000000)/"}
    before = max(r["Timestamp"] for r in rows)
    state.update_invoice(FIRST, invoice["InvoiceID"], {"YourRef": "PO-1"})
    params = sync_params(before, "ID,YourRef,Timestamp")
    bumped = [r for page in follow(api, INVOICES, params) for r in page]
    assert len(bumped) == 3 and {r["YourRef"] for r in bumped} == {"PO-1"}
    assert all(r["Timestamp"] > before for r in bumped)


def test_line_update_changing_total_bumps_the_whole_invoice(sandbox: SandboxServer, api: httpx.Client) -> None:
    state = sandbox.state
    invoice = state.create_invoice(FIRST, {}, [{"NetPrice": 1}, {"NetPrice": 2}])
    since = max(line["Timestamp"] for line in invoice["Lines"])
    state.update_invoice_line(FIRST, invoice["Lines"][0]["ID"], Description="renamed")
    rows = api.get(INVOICES, params=sync_params(since, "ID,Description")).json()["d"]["results"]
    assert [r["ID"] for r in rows] == [invoice["Lines"][0]["ID"]]
    since = max(line["Timestamp"] for line in state.invoice_lines(FIRST))
    state.update_invoice_line(FIRST, invoice["Lines"][1]["ID"], Quantity=4)
    rows = api.get(INVOICES, params=sync_params(since, "ID,AmountFC,AmountFCExclVat")).json()["d"]["results"]
    assert sorted(r["AmountFCExclVat"] for r in rows) == [9.0, 9.0]


def test_deletions_appear_in_sync_deleted(sandbox: SandboxServer, api: httpx.Client) -> None:
    state = sandbox.state
    account = state.create_account(FIRST, Name="gone")
    invoice = state.create_invoice(FIRST, {}, [{"NetPrice": 1}, {"NetPrice": 2}])
    kept = state.create_invoice(FIRST, {}, [{"NetPrice": 1}, {"NetPrice": 2}])
    state.delete_account(FIRST, account["ID"])
    state.delete_invoice(FIRST, invoice["InvoiceID"])
    state.delete_invoice_line(FIRST, kept["Lines"][0]["ID"])
    select = "ID,EntityKey,EntityType,Timestamp,DeletedBy,DeletedDate,Division"
    rows = [r for page in follow(api, DELETED, sync_params(select=select)) for r in page]
    assert [(r["EntityKey"], r["EntityType"]) for r in rows] == [
        (account["ID"], 2),
        (invoice["InvoiceID"], 13),
        (kept["Lines"][0]["ID"], 13),
    ]
    assert all(r["Division"] == FIRST and str(r["DeletedDate"]).startswith("/Date(") for r in rows)
    live = [r for page in follow(api, INVOICES, sync_params(select="ID")) for r in page]
    assert [r["ID"] for r in live] == [kept["Lines"][1]["ID"]]
    assert follow(api, ACCOUNTS, sync_params()) == [[]]


def test_dates_are_amsterdam_wall_time_labelled_utc(sandbox: SandboxServer, clock: FakeClock) -> None:
    summer = datetime(2024, 7, 1, 10, 0, tzinfo=UTC).timestamp()  # 12:00 in Amsterdam (CEST)
    winter = datetime(2024, 1, 15, 10, 0, tzinfo=UTC).timestamp()  # 11:00 in Amsterdam (CET)
    assert parse_exact(exact_datetime(summer)) == datetime(2024, 7, 1, 12, 0)
    assert parse_exact(exact_datetime(winter)) == datetime(2024, 1, 15, 11, 0)
    assert exact_date(date(2024, 8, 12)) == "/Date(1723420800000)/"  # as recorded from Exact
    clock.advance(summer - clock.now())
    account = sandbox.state.create_account(FIRST, Name="summer")
    assert parse_exact(account["Modified"]) == datetime(2024, 7, 1, 12, 0)


def test_some_values_arrive_as_strings(sandbox: SandboxServer, api: httpx.Client) -> None:
    for n in range(14):
        sandbox.state.create_account(SECOND, Name=f"c{n}", IsSales=True)
    url = f"/api/v1/{SECOND}/sync/CRM/Accounts"
    values = [r["IsSales"] for page in follow(api, url, sync_params()) for r in page]
    assert values.count("true") == 2 and values.count(True) == 12
    sandbox.state.create_invoice(SECOND, {}, [{"Quantity": 2, "NetPrice": 1}] * 7)
    url = f"/api/v1/{SECOND}/sync/SalesInvoice/SalesInvoices"
    quantities = [r["Quantity"] for page in follow(api, url, sync_params(select="Quantity")) for r in page]
    assert "2.00" in quantities and 2.0 in quantities


def test_me_divisions_and_division_access(make_sandbox: object) -> None:
    sandbox = make_sandbox(seed=True, restricted_divisions=(SECOND,))  # type: ignore[operator]
    token = sandbox.state.issue_tokens()["access_token"]
    client = httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"})
    me = client.get("/api/v1/current/Me").json()["d"]["results"][0]
    assert me["CurrentDivision"] == FIRST and me["UserID"] and me["FullName"] == "Samuel Bodin"
    assert me["__metadata"]["type"] == "Exact.Web.Api.Models.System.Me"
    only = client.get("/api/v1/current/Me", params={"$select": "CurrentDivision"}).json()["d"]["results"][0]
    assert set(only) == {"__metadata", "CurrentDivision"}
    divisions = client.get(f"/api/v1/{FIRST}/system/Divisions", params={"$select": "Code,Description,Current"})
    assert [(d["Code"], d["Current"]) for d in divisions.json()["d"]["results"]] == [
        (FIRST, True),
        (SECOND, False),
    ]
    for division in (SECOND, 999):
        refused = client.get(f"/api/v1/{division}/sync/CRM/Accounts", params=sync_params())
        assert refused.status_code == 403 and refused.headers["Reason"] == "NoDivisionAccess"
        assert error_value(refused) == "Forbidden"
    seeded = client.get(f"/api/v1/{FIRST}/sync/CRM/Accounts", params=sync_params(select="ID,Code,Name"))
    names = {r["Name"] for r in seeded.json()["d"]["results"]}
    assert {"Exact Software France", "Foobar2 Updated"} <= names
    missing = client.get("/api/v1/124132/crm/Nope")
    assert missing.status_code == 404 and error_value(missing)
