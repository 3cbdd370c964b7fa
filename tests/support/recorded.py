"""Real Exact Online responses shipped with the tests (tests/fixtures/exact-recorded, see its README).

A missing file raises, so the test that needs it fails: a clone that lost its fixtures must not pass by skipping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "exact-recorded"


class MissingFixtureError(FileNotFoundError):
    """A recorded response the tests need is not in the repository."""


def recorded_file(name: str) -> dict[str, Any]:
    """One recording file: {"api": {"get"|"post": {path: entry or [entries]}}}."""
    file = RECORDED / name
    if not file.is_file():
        raise MissingFixtureError(f"recorded Exact response {file} is missing (it ships with the repository)")
    body: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return body


def recorded_get(name: str, path: str, index: int = 0) -> dict[str, Any]:
    """The response body of the `index`th recorded GET of `path` in file `name`."""
    entry = recorded_file(name)["api"]["get"][path]
    entries = entry if isinstance(entry, list) else [entry]
    body: dict[str, Any] = entries[index]["response"]
    return body
