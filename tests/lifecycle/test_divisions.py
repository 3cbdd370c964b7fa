"""Every division of a connection: discovery, a division the consent does not cover, choosing divisions."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, Division, SyncCursor
from syncs.connect_flow import ConnectFlow
from syncs.divisions import list_divisions
from syncs.errors import ExactRequestError
from syncs.sandbox.server import SandboxServer
from syncs.settings import Settings
from tests.lifecycle.conftest import CURRENT, SECOND, THIRD, connect_via_flow
from tests.support.cli import CliInvoke
from tests.support.clock import FakeClock
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


@pytest.mark.parametrize("reason", ["BlockedUser", None])
def test_a_login_wide_403_still_fails_the_run(reason: str | None) -> None:
    from syncs.divisions import division_unavailable

    assert not division_unavailable(ExactRequestError("no", 403, reason))
    assert division_unavailable(ExactRequestError("no", 403, "DivisionBlocked"))
