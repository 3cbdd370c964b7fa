from __future__ import annotations

import httpx

from syncs.sandbox.server import SandboxServer
from tests.sandbox.conftest import FIRST, follow, sync_params


def test_control_api_drives_data_tokens_config_and_counters(sandbox: SandboxServer) -> None:
    control = httpx.Client(base_url=f"{sandbox.base_url}/sandbox")
    pair = control.post("/tokens").json()
    assert pair["expires_in"] == "600"
    api = httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {pair['access_token']}"})
    d = f"/divisions/{FIRST}"

    created = control.post(f"{d}/accounts", json={"Name": "Acme", "City": "Delft", "Code": "42"})
    assert created.status_code == 201
    account = created.json()
    assert account["Code"] == "42".rjust(18)
    assert control.patch(f"{d}/accounts/{account['ID']}", json={"Name": "Acme BV"}).json()["Name"] == "Acme BV"
    assert control.get(f"{d}/accounts/{account['ID']}").json()["Name"] == "Acme BV"
    assert control.post(f"{d}/accounts", json={"Bogus": 1}).status_code == 400
    assert control.patch(f"{d}/accounts/missing", json={"Name": "x"}).status_code == 404

    body = {
        "InvoiceTo": account["ID"],
        "InvoiceDate": "2024-12-01",
        "Lines": [{"NetPrice": 10}, {"NetPrice": 5}],
    }
    invoice = control.post(f"{d}/invoices", json=body).json()
    assert invoice["AmountFCExclVat"] == 15.0 and len(invoice["Lines"]) == 2
    line_id = invoice["Lines"][0]["ID"]
    assert control.patch(f"{d}/invoice-lines/{line_id}", json={"Quantity": 3}).json()["AmountFC"] == 30.0
    assert control.get(f"{d}/invoices/{invoice['InvoiceID']}").json()["AmountFCExclVat"] == 35.0
    added = control.post(f"{d}/invoices/{invoice['InvoiceID']}/lines", json={"NetPrice": 1}).json()
    assert added["LineNumber"] == 3
    assert control.delete(f"{d}/invoice-lines/{line_id}").json()["EntityKey"] == line_id
    assert len(control.get(f"{d}/invoice-lines").json()) == 2
    assert control.patch(f"{d}/invoices/{invoice['InvoiceID']}", json={"Status": 50}).json()["Status"] == 50

    rows = [r for p in follow(api, f"/api/v1/{FIRST}/sync/CRM/Accounts", sync_params()) for r in p]
    assert [r["Name"] for r in rows] == ["Acme BV"]
    assert control.delete(f"{d}/invoices/{invoice['InvoiceID']}").json()["EntityType"] == 13
    assert control.delete(f"{d}/accounts/{account['ID']}").json()["EntityType"] == 2
    assert len(control.get(f"{d}/deleted").json()) == 3

    config = control.post("/config", json={"minutely_limit": 1, "page_size": 2}).json()
    assert config["minutely_limit"] == 1 and sandbox.state.config.page_size == 2
    assert control.post("/config", json={"nope": 1}).status_code == 400
    assert control.post("/generate", json={"division": FIRST, "accounts": 5, "invoices": 3}).json() == {
        "accounts": 5,
        "invoices": 3,
        "lines": 12,
    }
    assert len(control.get(f"{d}/accounts").json()) == 5
    counters = control.get("/counters").json()
    assert counters["api_calls"] == {str(FIRST): 1} and counters["tokens_issued"] == 1
    assert control.get("/divisions").json()[0]["Code"] == FIRST
    assert control.get("/nothing").status_code == 404
