"""A clone tests itself: recorded responses ship with the repository, and a missing one fails rather than skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.recorded import RECORDED, MissingFixtureError, recorded_file

REPO = Path(__file__).resolve().parents[1]


def test_recorded_responses_live_inside_the_repository() -> None:
    assert RECORDED.is_relative_to(REPO)
    names = {file.name for file in RECORDED.glob("*.json")}
    assert {"gl-accounts.json", "list-accounts.json", "create-invoice.json", "get-current-user.json"} <= names
    assert set(recorded_file("gl-accounts.json")) == {"api"}


def test_a_missing_recording_raises_instead_of_skipping() -> None:
    with pytest.raises(MissingFixtureError, match=r"absent\.json is missing"):
        recorded_file("absent.json")


def _run_pytest(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.support.no_skips", *options, "test_probe.py"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


SKIPPING = """
import pytest

def test_needs_a_file():
    pytest.skip("fixture file not found")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
"""


def test_fail_on_skip_turns_a_skip_into_a_failure(tmp_path: Path) -> None:
    lenient = _run_pytest(tmp_path, SKIPPING)
    assert lenient.returncode == 0, lenient.stdout
    strict = _run_pytest(tmp_path, SKIPPING, "--fail-on-skip")
    assert strict.returncode == 1, strict.stdout
    assert "1 failed, 1 xfailed" in strict.stdout
    assert "skipped under --fail-on-skip" in strict.stdout and "fixture file not found" in strict.stdout


def test_fail_on_skip_covers_a_module_skipped_at_collection(tmp_path: Path) -> None:
    strict = _run_pytest(tmp_path, "import pytest\npytest.skip('no server binary', allow_module_level=True)\n",
                         "--fail-on-skip")  # fmt: skip
    assert strict.returncode != 0, strict.stdout
    assert "no server binary" in strict.stdout
