"""Every division of a connection: discovery, a division the consent does not cover, choosing divisions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, Connection, Division, SyncCursor, SyncRun
from syncs.core.errors import ExactRequestError, MalformedResponseError
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient, open_client
from syncs.exact.odata import Page
from syncs.lifecycle.connect_flow import ConnectFlow
from syncs.lifecycle.divisions import list_divisions
from syncs.sandbox.server import SandboxServer
from syncs.tokens.pair import TokenPair
from tests.client.stub import Answer, StubServer
from tests.lifecycle.conftest import CURRENT, SECOND, THIRD, connect_via_flow
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock
from tests.support.tokens import token_store
from worker.runs import execute_sync


def test_a_division_outside_the_consent_is_skipped_and_the_run_succeeds(
    sandbox: SandboxServer, flow: ConnectFlow, life_settings: Settings, db: sessionmaker[Session], clock: FakeClock
) -> None:
    sandbox.state.configure(extra_divisions=[[THIRD, "Not consented"]], restricted_divisions=[THIRD])
    sandbox.state.create_account(THIRD, Name="Hidden BV")
    connected = connect_via_flow(flow)
    assert [d.code for d in connected.divisions] == [CURRENT, SECOND, THIRD]

    outcome = execute_sync(life_settings, "acme", clock=clock)
    assert outcome.status == "succeeded"
    assert outcome.divisions == (CURRENT, SECOND) and outcome.skipped_divisions == (THIRD,)
    with db() as session:
        third = session.get_one(Division, (connected.connection_id, THIRD))
        assert not third.available and "NoDivisionAccess" in (third.unavailable_reason or "")
        cursors = session.execute(select(SyncCursor.division, SyncCursor.entity)).all()
        assert {division for division, _ in cursors} == {CURRENT, SECOND}
        assert {(CURRENT, "accounts"), (SECOND, "accounts")} <= set(cursors)
        assert set(session.scalars(select(Account.division)).all()) == {CURRENT, SECOND}
        assert session.get_one(Division, (connected.connection_id, SECOND)).last_synced_at is not None
    refused = sandbox.state.counters.http_4xx.get(THIRD, 0)
    assert refused == 1

    # The next run leaves the unavailable division alone (no second 403 toward Exact's error limit) ...
    again = execute_sync(life_settings, "acme", clock=clock)
    assert again.divisions == (CURRENT, SECOND) and again.skipped_divisions == ()
    assert sandbox.state.counters.http_4xx.get(THIRD, 0) == refused
    # ... until the daily division check tries it again (a new consent may cover it).
    clock.advance(25 * 3600)
    sandbox.state.configure(restricted_divisions=[])
    later = execute_sync(life_settings, "acme", clock=clock)
    assert later.divisions == (CURRENT, SECOND, THIRD)


def test_choose_divisions_from_the_cli(cli: CliInvoke, flow: ConnectFlow, db: sessionmaker[Session]) -> None:
    connect_via_flow(flow)
    listed = cli("connections", "divisions", "acme")
    assert listed.exit_code == 0, listed.output
    assert str(CURRENT) in listed.output and str(SECOND) in listed.output and "synced" in listed.output

    def enabled() -> list[int]:
        with db() as session:
            return list(session.scalars(select(Division.code).where(Division.sync_enabled).order_by(Division.code)))

    assert cli("connections", "divisions", "acme", "--include", str(SECOND)).exit_code == 0
    assert enabled() == [SECOND]
    assert cli("connections", "divisions", "acme", "--exclude", str(SECOND)).exit_code == 0
    assert enabled() == [CURRENT]
    assert cli("connections", "divisions", "acme", "--all").exit_code == 0
    assert enabled() == [CURRENT, SECOND]
    unknown = cli("connections", "divisions", "acme", "--include", "999")
    assert unknown.exit_code == 2 and "unknown division(s) 999" in unknown.output


def test_without_system_divisions_the_current_division_from_me_is_used() -> None:
    class Client:
        def current_me(self) -> dict[str, Any]:
            return {"CurrentDivision": 42}

        def pages(self, division: int, endpoint: str, params: dict[str, str]) -> Any:
            raise ExactRequestError("Forbidden - Application Scope Violated", 403)

    listed, complete = list_divisions(Client())
    assert not complete
    assert [(d.code, d.is_current) for d in listed] == [(42, True)]


@pytest.mark.parametrize("reason", ["BlockedUser", "LicenseExpired", None])
def test_a_login_wide_403_still_fails_the_run(
    reason: str | None,
    sandbox: SandboxServer,
    flow: ConnectFlow,
    life_settings: Settings,
    db: sessionmaker[Session],
    clock: FakeClock,
) -> None:
    connected = connect_via_flow(flow)
    sandbox.state.configure(restricted_divisions=[SECOND], restricted_reason=reason)
    with pytest.raises(ExactRequestError, match="answered 403") as refused:
        execute_sync(life_settings, "acme", clock=clock)
    assert refused.value.status_code == 403 and refused.value.reason == reason
    with db() as session:
        second = session.get_one(Division, (connected.connection_id, SECOND))
        assert second.available and second.unavailable_reason is None  # not blamed on the division
        run = session.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()
        assert run is not None and run.status == "failed" and "403" in (run.error or "")


ME_ROW = {"UserID": "0b5b6f6e-9d4b-4f4e-9b1a-3c1f0e0d0c0b", "FullName": "Test User"}


@pytest.mark.parametrize(
    ("me", "expected"),
    [
        ({}, "field CurrentDivision is missing or null"),  # a Me without CurrentDivision
        ({"CurrentDivision": "not-a-number"}, "field CurrentDivision: cannot read 'not-a-number'"),
    ],
)
def test_a_malformed_me_is_a_clear_malformed_response(
    me: dict[str, Any], expected: str, settings: Settings, db: sessionmaker[Session], redis_client: Any
) -> None:
    def route(path: str) -> Answer:
        if path.startswith("/api/v1/current/Me"):
            return Answer(200, {"d": {"results": [{**ME_ROW, **me}]}})
        return Answer(500, "unexpected")

    with StubServer(route) as stub, stub_exact(stub, settings, db, redis_client) as client:
        with pytest.raises(MalformedResponseError, match=expected) as raised:
            list_divisions(client)
        assert "current/Me" in str(raised.value)
        assert [path.split("?")[0] for _, path, _ in stub.requests] == ["/api/v1/current/Me"]


def test_a_malformed_divisions_status_falls_back_to_me(
    settings: Settings, db: sessionmaker[Session], redis_client: Any
) -> None:
    def route(path: str) -> Answer:
        if path.startswith("/api/v1/current/Me"):
            return Answer(200, {"d": {"results": [{**ME_ROW, "CurrentDivision": CURRENT}]}})
        rows = [{"Code": CURRENT, "Description": "Main", "Status": "active?", "Current": True}]
        return Answer(200, {"d": {"results": rows}})

    with StubServer(route) as stub, stub_exact(stub, settings, db, redis_client) as client:
        # The known division's list is unreadable, and so is the one asked in Me's division: Me's alone is kept.
        listed, complete = list_divisions(client, known_current=SECOND)
    assert not complete and [(d.code, d.is_current) for d in listed] == [(CURRENT, True)]

    def bad_code(path: str) -> Answer:
        return Answer(200, {"d": {"results": [{"Code": "main", "Status": 1}]}})

    with (
        StubServer(bad_code) as stub,
        stub_exact(stub, settings, db, redis_client) as client,
        pytest.raises(MalformedResponseError, match="field CurrentDivision is missing"),
    ):
        list_divisions(client, known_current=CURRENT)  # then Me (the stub's rows) has no CurrentDivision


def stub_exact(stub: StubServer, settings: Settings, db: sessionmaker[Session], redis_client: Any) -> ExactClient:
    """An ExactClient on `stub` for a fresh connection holding a valid token pair."""
    clock = FakeClock()
    stub_settings = settings.model_copy(
        update={"exact_base_url": stub.base_url, "exact_client_id": "c", "exact_client_secret": SecretStr("s")}
    )
    with db() as session, session.begin():
        connection = Connection(name=f"stubbed-{stub.base_url.rsplit(':', 1)[1]}", region="nl")
        session.add(connection)
        session.flush()
        connection_id = connection.id
    pair = TokenPair("stub-access", "stub-refresh", clock.now(), 600.0)
    with db() as session, session.begin():
        token_store(db, stub_settings).save(session, connection_id, pair)
    return open_client(stub_settings, connection_id, "nl", sessions=db, redis=redis_client, clock=clock)


class RefusedToken:
    """A division source whose token Exact refuses: the decision not to ask Me as well is what is tested."""

    def __init__(self) -> None:
        self.asked_me = 0

    def current_me(self) -> dict[str, Any]:
        self.asked_me += 1
        return {"CurrentDivision": CURRENT}

    def pages(self, division: int, endpoint: str, params: dict[str, str]) -> Iterator[Page]:
        raise ExactRequestError("Exact refused the access token (401)", 401)


def test_a_refused_token_is_not_asked_twice() -> None:
    source = RefusedToken()
    with pytest.raises(ExactRequestError) as refused:
        list_divisions(source, known_current=CURRENT)
    assert refused.value.status_code == 401 and source.asked_me == 0  # one 401 at Exact, not two
