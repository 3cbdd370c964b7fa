"""The dashboard in a real browser: Debian's chromium driven by Playwright, against sandbox data synced over several
hours (fake clock), with a pixel check that each division's chart draws its bars, and refused without the token.

Set UPDATE_DASHBOARD_SCREENSHOT=1 to write the screenshot the README shows (docs/dashboard.png)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import ConsoleMessage, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.errors import ReauthRequiredError
from syncs.core.settings import Settings
from syncs.sandbox import SandboxServer
from tests.faults.conftest import register
from tests.lifecycle.conftest import ServerThread
from tests.ops.conftest import ADMIN_TOKEN, DIV
from tests.support.clock import FakeClock
from worker.dashboard import BAR_COLOUR
from worker.runs import execute_sync

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
HOURS = 5


def bar_columns(png: bytes) -> int:
    """How many pixel columns of the chart contain bar colour (each hour with calls draws a bar)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    target = tuple(int(BAR_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    width, height = image.size
    pixels = image.load()
    assert pixels is not None

    def close(x: int, y: int) -> bool:
        pixel = pixels[x, y]
        assert isinstance(pixel, tuple)
        return all(abs(int(a) - b) <= 12 for a, b in zip(pixel, target, strict=False))

    return sum(1 for x in range(width) if any(close(x, y) for y in range(height)))


def sync_over_hours(settings: Settings, sandbox: SandboxServer, clock: FakeClock) -> None:
    state = sandbox.state
    for division in state.divisions:
        state.generate(division, accounts=40, invoices=6, lines_per_invoice=2)
    for hour in range(HOURS):
        execute_sync(settings, "acme", clock=clock)
        first = state.accounts(DIV)[hour]["ID"]
        state.update_account(DIV, first, Name=f"Renamed in hour {hour}")
        clock.advance(3600)


@pytest.mark.timeout(180)
def test_dashboard_renders_in_chromium_and_refuses_without_the_token(
    ops_settings: Settings,
    db: sessionmaker[Session],
    sandbox: SandboxServer,
    clock: FakeClock,
    web: ServerThread,
    tmp_path: Path,
) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install chromium (.ci/run installs it)"
    register(db, ops_settings, sandbox.state, "acme")
    sync_over_hours(ops_settings, sandbox, clock)
    register(db, ops_settings, sandbox.state, "globex")
    sandbox.state.revoke_refresh_tokens()  # globex's first run finds its refresh token refused: re-consent needed
    clock.advance(600)
    with pytest.raises(ReauthRequiredError):
        execute_sync(ops_settings, "globex", clock=clock)
    url = f"{web.base_url}/dashboard"
    assert httpx.get(url).status_code == 401

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            # The page answers 401 with a Basic challenge; the browser answers it with the credentials it holds, as
            # a person typing the token at its prompt. Without any, the browser gives up at the challenge; with the
            # wrong ones, it shows the refusal.
            with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                browser.new_page().goto(url)
            wrong = browser.new_context(http_credentials={"username": "ops", "password": "not-the-token"})
            refused = wrong.new_page()
            answer = refused.goto(url)
            assert answer is not None and answer.status == 401 and "invalid admin token" in refused.content()
            wrong.close()
            context = browser.new_context(
                http_credentials={"username": "ops", "password": ADMIN_TOKEN}, viewport={"width": 1440, "height": 900}
            )
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web.base_url)
            page = context.new_page()

            def console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    problems.append(message.text)  # e.g. a CSP refusal of our own style or script

            page.on("console", console)
            response = page.goto(url)
            assert response is not None and response.status == 200
            body = page.inner_text("body")
            for expected in ("acme", "globex", "reauth_required", "Recent runs", "Freshness", str(DIV)):
                assert expected in body, expected
            assert "accounts: +" in body and "~1" in body  # per-entity counts of the runs

            fix = page.locator("button.copy[data-copy='exact-sync connect globex --region nl']")
            fix.click()
            assert page.evaluate("navigator.clipboard.readText()") == "exact-sync connect globex --region nl"

            chart = page.locator(f"svg.calls-chart[data-division='{DIV}']")
            assert chart.is_visible()
            bars = bar_columns(chart.screenshot())
            # HOURS hours with calls, each bar about 288/24 - 2 = 10 px wide: the bars are drawn, one per hour.
            assert bars >= HOURS * 8, bars
            assert chart.locator("rect[height]").count() == 24
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert bar_columns(shot.read_bytes()) >= bars  # the charts show in the whole page too
        finally:
            browser.close()
    assert problems == []
    if os.environ.get("UPDATE_DASHBOARD_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs" / "dashboard.png")
