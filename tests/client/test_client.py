"""ExactClient against the sandbox (real HTTP) and a stub for the answers the sandbox never gives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.errors import (
    ExactRequestError,
    ExactServerError,
    ExactUnavailableError,
    MalformedResponseError,
    PaginationLoopError,
    RateLimitedError,
)
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient
from syncs.sandbox import SandboxServer
from tests.client.conftest import store_pair
from tests.client.stub import Answer, StubServer
from tests.support.clock import FakeClock
from tests.support.tokens import token_store

DIV = 124132
ACCOUNTS = {"$filter": "Timestamp gt 0L", "$select": "ID,Name,Timestamp"}
VALID = {"access_token": "stub-access", "refresh_token": "stub-refresh", "expires_in": "600"}


StubOpener = Callable[[StubServer], ExactClient]


@pytest.fixture
def exact(
    issued: dict[str, Any], client_settings: Settings, open_exact: Callable[[Settings], ExactClient]
) -> Iterator[ExactClient]:
    with open_exact(client_settings) as client:
        yield client


@pytest.fixture
def stub_client(
    settings: Settings,
    connection_id: int,
    db: sessionmaker[Session],
    clock: FakeClock,
    open_exact: Callable[[Settings], ExactClient],
) -> StubOpener:
    """Opens an ExactClient on a stub server, holding a valid token pair for it."""

    def open_(stub: StubServer) -> ExactClient:
        stub_settings = settings.model_copy(update={"exact_base_url": stub.base_url})
        store_pair(db, stub_settings, connection_id, VALID, clock.now())
        return open_exact(stub_settings)

    return open_


def test_pages_follow_next_to_the_end(exact: ExactClient, sandbox: SandboxServer) -> None:
    sandbox.state.configure(page_size=5)
    pages = list(exact.pages(DIV, "sync/CRM/Accounts", ACCOUNTS))
    assert [len(page.rows) for page in pages] == [5, 5, 2]
    assert pages[0].next_url is not None and pages[1].next_url is not None and pages[2].next_url is None
    ids = [row["ID"] for page in pages for row in page.rows]
    assert sorted(ids) == sorted(str(a["ID"]) for a in sandbox.state.accounts(DIV))
    assert "__metadata" in pages[0].rows[0]
    assert exact.api_calls == 3
    assert sandbox.state.counters.api_calls == {DIV: 3}


def test_pages_resume_at_a_stored_next(exact: ExactClient, sandbox: SandboxServer) -> None:
    sandbox.state.configure(page_size=5)
    first = list(exact.pages(DIV, "sync/CRM/Accounts", ACCOUNTS))
    resume_url = first[0].next_url
    assert resume_url is not None
    calls = exact.api_calls
    rest = list(exact.pages(DIV, "sync/CRM/Accounts", ACCOUNTS, resume_url=resume_url))
    assert [page.rows for page in rest] == [page.rows for page in first[1:]]
    assert exact.api_calls == calls + 2  # page 1 is not read again


def test_a_resume_url_on_another_host_is_refused(stub_client: StubOpener) -> None:
    with (
        StubServer(lambda path: Answer(200, {"d": []})) as elsewhere,
        StubServer(lambda path: Answer(200, {"d": []})) as stub,
        stub_client(stub) as exact,
        pytest.raises(MalformedResponseError, match="is not on"),
    ):
        list(exact.pages(1, "crm/Accounts", {}, resume_url=f"{elsewhere.base_url}/api/v1/1/crm/Accounts?$skiptoken=1"))
    assert elsewhere.requests == [] and stub.requests == []


def test_current_me(exact: ExactClient) -> None:
    assert exact.current_me()["CurrentDivision"] == DIV
    assert exact.api_calls == 1


def test_unauthorized_refreshes_once_and_retries_once(
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    client_settings: Settings,
    connection_id: int,
    open_exact: Callable[[Settings], ExactClient],
    clock: FakeClock,
) -> None:
    issued = sandbox.state.issue_tokens()
    clock.advance(572)  # inside Exact's window for the issued pair
    # We hold an access token Exact does not know (e.g. revoked), one second short of our refresh window...
    store_pair(db, client_settings, connection_id, {**issued, "access_token": "unknown"}, clock.now() - 571)
    sandbox.state.reset_counters()
    with open_exact(client_settings) as exact:
        # ...and the 401 arrives inside the window, so a refresh is allowed (a young token is not refreshed).
        exact._http.event_hooks["request"].append(lambda request: clock.advance(2) if exact.api_calls == 0 else None)
        assert exact.current_me()["CurrentDivision"] == DIV
        assert exact.api_calls == 2
    counters = sandbox.state.counters
    assert (counters.http_401, counters.token_requests, counters.tokens_issued) == (1, 1, 1)
    assert token_store(db, client_settings).load(connection_id).access_token not in (None, "unknown")


def test_second_unauthorized_is_an_error(stub_client: StubOpener) -> None:
    def route(path: str) -> Answer:
        if path.startswith("/api/oauth2/token"):
            return Answer(200, {"access_token": "A2", "refresh_token": "R2", "expires_in": "600"})
        expired = {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="access token expired"'}
        return Answer(401, {"error": {"code": "", "message": {"lang": "", "value": "Unauthorized"}}}, expired)

    with (
        StubServer(route) as stub,
        stub_client(stub) as exact,
    ):
        with pytest.raises(ExactRequestError) as raised:
            exact.current_me()
        assert raised.value.status_code == 401
        methods = [(method, path.split("?")[0]) for method, path, _ in stub.requests]
        assert methods == [
            ("GET", "/api/v1/current/Me"),
            ("POST", "/api/oauth2/token"),
            ("GET", "/api/v1/current/Me"),
        ]
        assert [h.get("Authorization") for m, _, h in stub.requests if m == "GET"] == [
            "Bearer stub-access",
            "Bearer A2",
        ]


def test_pagination_loop_is_detected(stub_client: StubOpener) -> None:
    base: list[str] = []

    def route(path: str) -> Answer:
        # Page 2 points back at itself.
        return Answer(
            200, {"d": {"results": [{"ID": path}], "__next": f"{base[0]}/api/v1/1/crm/Accounts?$skiptoken=2"}}
        )

    with (
        StubServer(route) as stub,
        stub_client(stub) as exact,
    ):
        base.append(stub.base_url)
        pages = exact.pages(1, "crm/Accounts", {"$select": "ID"})
        assert len(next(pages).rows) == 1
        assert len(next(pages).rows) == 1
        with pytest.raises(PaginationLoopError, match=r"\$skiptoken=2"):
            next(pages)
        assert len(stub.requests) == 2


def test_next_is_followed_verbatim(stub_client: StubOpener) -> None:
    base: list[str] = []
    skip = "$skiptoken=datetime'2018-09-21T04%3A18%3A55.617',guid'cbddbd5c-0068-4385-ae3e-6f96c04b06d6'"

    def route(path: str) -> Answer:
        if "skiptoken" in path:
            return Answer(200, {"d": {"results": [{"ID": 2}]}})
        return Answer(200, {"d": {"results": [{"ID": 1}], "__next": f"{base[0]}/api/v1/1/x?$top=40&{skip}"}})

    with (
        StubServer(route) as stub,
        stub_client(stub) as exact,
    ):
        base.append(stub.base_url)
        assert [r["ID"] for page in exact.pages(1, "x", {"$top": "100"}) for r in page.rows] == [1, 2]
        assert stub.requests[1][1] == f"/api/v1/1/x?$top=40&{skip}"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [("<html>login</html>", "not JSON"), ({"d": {"results": {"ID": 1}}}, "'d.results' is not a list")],
)
def test_malformed_page(
    body: Any,
    fragment: str,
    stub_client: StubOpener,
) -> None:
    with (
        StubServer(lambda path: Answer(200, body)) as stub,
        stub_client(stub) as exact,
    ):
        with pytest.raises(MalformedResponseError, match=fragment) as raised:
            list(exact.pages(1, "crm/Accounts", {}))
        assert f"{stub.base_url}/api/v1/1/crm/Accounts" in str(raised.value)


def test_next_on_another_host_is_refused(stub_client: StubOpener) -> None:
    with StubServer(lambda path: Answer(200, {"d": []})) as elsewhere:
        body = {"d": {"results": [], "__next": f"{elsewhere.base_url}/api/v1/1/crm/Accounts?$skiptoken=1"}}
        with (
            StubServer(lambda path: Answer(200, body)) as stub,
            stub_client(stub) as exact,
            pytest.raises(MalformedResponseError, match="is not on"),
        ):
            list(exact.pages(1, "crm/Accounts", {}))
        assert elsewhere.requests == []


def test_429_at_the_minutely_limit_waits_and_completes(
    exact: ExactClient, sandbox: SandboxServer, clock: FakeClock
) -> None:
    sandbox.state.configure(minutely_limit=3)
    for _ in range(3):  # someone else spent this minute's budget
        assert sandbox.state.spend(DIV).allowed
    start = clock.now()
    rows = [row for page in exact.pages(DIV, "sync/CRM/Accounts", ACCOUNTS) for row in page.rows]
    assert len(rows) == 12
    assert sandbox.state.counters.http_429 == {DIV: 1}
    next_minute = (int(start // 60) + 1) * 60
    assert clock.now() >= next_minute and clock.now() < next_minute + 1
    margin = Settings().rate_reset_margin_seconds  # the wait ends a margin after the reset (clock skew)
    assert sum(clock.slept) == pytest.approx(next_minute - start + margin, abs=0.01)


def test_known_empty_minute_is_waited_out_without_a_429(
    exact: ExactClient, sandbox: SandboxServer, clock: FakeClock
) -> None:
    sandbox.state.configure(minutely_limit=2)
    for _ in range(3):
        exact.current_me()
    assert sandbox.state.counters.http_429 == {}
    assert len(clock.slept) == 1 and 0 < clock.slept[0] <= 60 + Settings().rate_reset_margin_seconds


def test_daily_budget_spent_raises_with_the_reset(exact: ExactClient, sandbox: SandboxServer, clock: FakeClock) -> None:
    sandbox.state.configure(daily_limit=2)
    exact.get_json("sync/CRM/Accounts", ACCOUNTS, division=DIV)
    exact.get_json("sync/CRM/Accounts", ACCOUNTS, division=DIV)
    with pytest.raises(RateLimitedError) as raised:
        exact.get_json("sync/CRM/Accounts", ACCOUNTS, division=DIV)
    assert raised.value.retry_at == (int(clock.now() // 86400) + 1) * 86400
    assert sandbox.state.counters.http_429 == {}  # refused before asking Exact
    assert clock.slept == []


def test_endless_429_is_bounded(stub_client: StubOpener, clock: FakeClock) -> None:
    with (
        StubServer(lambda path: Answer(429, "")) as stub,
        stub_client(stub) as exact,
    ):
        with pytest.raises(RateLimitedError):
            exact.current_me()
        assert len(stub.requests) == 5
        limit = 60 + Settings().rate_reset_margin_seconds
        assert all(0 < s <= limit for s in clock.slept) and len(clock.slept) == 4


def test_server_errors_are_retried_with_backoff(stub_client: StubOpener, clock: FakeClock) -> None:
    answers = [
        Answer(503, "busy"),
        Answer(500, "oops"),
        Answer(200, {"d": {"results": [{"CurrentDivision": 7}]}}),
    ]
    with (
        StubServer(lambda path: answers.pop(0)) as stub,
        stub_client(stub) as exact,
    ):
        assert exact.current_me() == {"CurrentDivision": 7}
        assert exact.api_calls == 3
    assert len(clock.slept) == 2 and 0.5 <= clock.slept[0] <= 1 and 1 <= clock.slept[1] <= 2


def test_persistent_server_errors_and_unreachable_host(
    settings: Settings, stub_client: StubOpener, open_exact: Callable[[Settings], ExactClient]
) -> None:
    with (
        StubServer(lambda path: Answer(500, "oops")) as stub,
        stub_client(stub) as exact,
    ):
        with pytest.raises(ExactServerError) as raised:
            exact.current_me()
        assert raised.value.status_code == 500 and len(stub.requests) == 4
        dead = stub.base_url
    closed = settings.model_copy(update={"exact_base_url": dead})
    with (
        open_exact(closed) as exact,
        pytest.raises(ExactUnavailableError),
    ):
        exact.current_me()


def test_refusals_carry_exact_message_and_reason(exact: ExactClient, sandbox: SandboxServer) -> None:
    sandbox.state.configure(restricted_divisions=(124133,))
    with pytest.raises(ExactRequestError) as forbidden:
        list(exact.pages(124133, "sync/CRM/Accounts", ACCOUNTS))
    assert (forbidden.value.status_code, forbidden.value.reason) == (403, "NoDivisionAccess")
    with pytest.raises(ExactRequestError, match="mandatory filtering") as bad:
        list(exact.pages(DIV, "sync/CRM/Accounts", {"$select": "ID"}))
    assert bad.value.status_code == 400
