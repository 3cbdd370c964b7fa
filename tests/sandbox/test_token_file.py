"""A restarted sandbox honours the tokens it issued before, and serves the same data on every start."""

from __future__ import annotations

from pathlib import Path

from syncs.sandbox import SandboxConfig, SandboxState
from tests.support.clock import FakeClock


def test_tokens_survive_a_restart_with_a_token_file(tmp_path: Path) -> None:
    clock = FakeClock()
    config = SandboxConfig(token_file=str(tmp_path / "tokens.json"))
    pair = SandboxState(config, clock=clock).issue_tokens()
    clock.advance(590)  # inside the refresh window
    restarted = SandboxState(config, clock=clock)
    assert restarted.access_status(pair["access_token"]) == "ok"
    form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    renewed = restarted.token_request(form, config.client_id, config.client_secret)
    again = SandboxState(config, clock=clock)  # the rotation is kept too
    assert again.access_status(renewed["access_token"]) == "ok"
    assert SandboxState(SandboxConfig(), clock=clock).access_status(renewed["access_token"]) == "unknown"


def test_the_same_data_on_every_start() -> None:
    starts = [SandboxState(SandboxConfig(), clock=FakeClock()) for _ in range(2)]
    lines = [[line["ID"] for line in state.invoice_lines(124132)] for state in starts]
    assert lines[0] == lines[1] and lines[0]
    items = [[item["ID"] for item in state.records(124132, "items")] for state in starts]
    assert items[0] == items[1] and items[0]
