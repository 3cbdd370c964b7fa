"""The lock files cover pyproject.toml: every dependency pinned, within its bounds, with hashes (bash .ci/lock)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


# The newest release of each package with a known vulnerability (issue 7, point 10): pins must be newer, and the
# bounds in pyproject.toml must exclude it, so `pip install -e .` never picks it either.
NEWEST_VULNERABLE = {"h11": "0.15.0"}  # CVE-2025-43859, reachable through uvicorn and httpcore


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_no_known_vulnerable_release_is_pinned_or_allowed(lock: str) -> None:
    locked = pins(lock)
    bounds = {str(canonicalize_name(r.name)): r.specifier for r in declared(None)}
    for name, vulnerable in NEWEST_VULNERABLE.items():
        assert Version(locked[name][0]) > Version(vulnerable), f"{lock} pins {name} {locked[name][0]}"
        assert name in bounds and not bounds[name].contains(vulnerable), f"pyproject.toml allows {name} {vulnerable}"


def test_the_image_and_ci_install_exactly_the_locks() -> None:
    """What users build and what CI runs install the locked versions, hashes checked."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install --require-hashes -r requirements\.lock$", dockerfile, re.M), dockerfile
    assert re.search(r"pip install --no-deps \.", dockerfile)  # the project itself adds no unlocked dependency
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install --quiet --require-hashes -r requirements-dev.lock" in ci
    assert "pip install --quiet --no-deps -e ." in ci
