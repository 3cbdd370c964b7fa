"""The lock files cover pyproject.toml: every dependency pinned, within its bounds, with hashes (bash .ci/lock)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(lock: str) -> dict[str, tuple[str, int]]:
    """Name -> (version, number of hashes) of each pin in a lock file."""
    found: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (REPO / lock).read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match.group(1))
            found[name] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [Requirement(text) for text in names]


@pytest.mark.parametrize(("lock", "extra"), [("requirements.lock", None), ("requirements-dev.lock", "dev")])
def test_every_declared_dependency_is_pinned_within_bounds_with_hashes(lock: str, extra: str | None) -> None:
    locked = pins(lock)
    assert locked, f"{lock} has no pins"
    stale = []
    for requirement in declared(extra):
        name = canonicalize_name(requirement.name)
        if name not in locked or not requirement.specifier.contains(locked[name][0], prereleases=True):
            stale.append(str(requirement))
    assert not stale, f"{lock} does not satisfy {stale}: run `bash .ci/lock` and commit the lock files"
    assert all(hashes for _, hashes in locked.values()), f"a pin in {lock} has no hash"


def test_both_locks_pin_the_same_versions() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: version for name, (version, _) in runtime.items()} == {
        name: dev[name][0] for name in runtime if name in dev
    }
    assert set(runtime) <= set(dev)
