"""OData envelope parsing, against real responses recorded from Exact Online (tests/fixtures/exact-recorded)."""

from __future__ import annotations

import json

import pytest

from syncs.core.errors import MalformedResponseError
from syncs.exact.odata import error_message, oauth_error, page_from_json, parse_page
from tests.support.recorded import recorded_get


def test_results_page_with_next_is_followed_verbatim() -> None:
    body = recorded_get("gl-accounts.json", "/api/v1/124132/financial/GLAccounts", 0)
    page = parse_page(json.dumps(body), "https://x/GLAccounts")
    assert len(page.rows) == 60
    assert page.rows[0]["__metadata"]["type"] == "Exact.Web.Api.Models.GLAccount"
    assert page.next_url == body["d"]["__next"]
    assert "$skiptoken=datetime'2018-09-21T04%3A18%3A55.617',guid'" in (page.next_url or "")


def test_last_page_has_no_next() -> None:
    body = recorded_get("gl-accounts.json", "/api/v1/124132/financial/GLAccounts", 1)
    page = page_from_json(body, "u")
    assert len(page.rows) == 40
    assert page.next_url is None


def test_me_results() -> None:
    page = page_from_json(recorded_get("get-current-user.json", "/api/v1/current/Me"), "u")
    assert page.rows[0]["CurrentDivision"] == 124132


def test_single_record_becomes_one_row() -> None:
    path = "/api/v1/124132/crm/Accounts(guid'40d4c49d-1790-4a13-b890-42909af24348')"
    page = page_from_json(recorded_get("create-customer.json", path), "u")
    assert [row["ID"] for row in page.rows] == ["40d4c49d-1790-4a13-b890-42909af24348"]
    assert page.next_url is None


def test_bare_list_shape() -> None:
    page = parse_page(b'{"d": [{"ID": 1}, {"ID": 2}]}', "u")
    assert page.rows == [{"ID": 1}, {"ID": 2}]
    assert page.next_url is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<?xml version='1.0'?><feed/>", "not JSON"),
        (b"", "not JSON"),
        (b'{"results": []}', "no OData 'd' envelope"),
        (b"[1, 2]", "no OData 'd' envelope"),
        (b'{"d": "text"}', "'d' is a str"),
        (b'{"d": {"results": {"ID": 1}}}', "'d.results' is not a list"),
        (b'{"d": {"results": [1]}}', "row 0 is a int"),
        (b'{"d": [{"ID": 1}, "x"]}', "row 1 is a str"),
        (b'{"d": {"results": [], "__next": 5}}', "'d.__next' is not a URL"),
        (b'{"d": {"results": [], "__next": ""}}', "'d.__next' is not a URL"),
    ],
)
def test_malformed_bodies_name_the_url(body: bytes, fragment: str) -> None:
    with pytest.raises(MalformedResponseError) as raised:
        parse_page(body, "https://start.example/api/v1/1/crm/Accounts")
    assert fragment in str(raised.value)
    assert "https://start.example/api/v1/1/crm/Accounts" in str(raised.value)


def test_error_envelopes() -> None:
    exact = {"error": {"code": "", "message": {"lang": "", "value": "This endpoint has mandatory filtering"}}}
    assert error_message(json.dumps(exact)) == "This endpoint has mandatory filtering"
    flat = {"error": "unauthorized_client", "error_description": "Old refresh token used."}
    assert error_message(json.dumps(flat)) == "unauthorized_client: Old refresh token used."
    assert oauth_error(json.dumps(flat)) == ("unauthorized_client", "Old refresh token used.")
    assert error_message(b"<html>Bad gateway</html>") is None
    assert oauth_error(b"oops") == (None, None)
