"""The CLI starts without its heavy libraries: `--help` and quick commands import them only when they use them
(the benchmark, bench/cli_start.py, times the start; no timing is asserted here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models import Connection
from syncs.core.settings import Settings
from tests.support.cli import settings_env
from tests.worker.conftest import ROOT

HEAVY = (
    "sqlalchemy", "httpx", "redis", "psycopg", "celery", "alembic", "starlette", "uvicorn", "kombu", "structlog",
    "pydantic_settings",
)  # fmt: skip
# What reading exact-sync's own tables does not need: the ~35 synced tables and their writers, Celery, HTTP, structlog.
NOT_FOR_READING_STATE = ("models.synced", "syncs.entities.writer", "celery", "httpx", "alembic", "structlog")


def loaded_after(code: str, watched: tuple[str, ...] = HEAVY, env: dict[str, str] | None = None) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {watched!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert loaded_after("import worker.cli") == []


def test_help_loads_no_heavy_library_and_lists_every_command() -> None:
    code = (
        "import contextlib, io\n"
        "from worker.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    app(['--help'], prog_name='exact-sync')\n"
        "assert 'connections' in out.getvalue() and 'status' in out.getvalue(), out.getvalue()"
    )
    assert loaded_after(code) == []


def test_the_cli_skips_the_final_garbage_collections() -> None:
    """At exit the CLI freezes what it allocated, so Python's final collections do not walk it (bench/cli_start.py
    shows the time). Exit handlers run last-registered first: the probe's, registered before, runs after the CLI's."""
    code = "import atexit, gc\natexit.register(lambda: print(gc.get_freeze_count()))\nimport worker.cli"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0, done.stdout


@pytest.mark.parametrize("command", [["status"], ["connections", "list"]])
def test_reading_state_builds_no_synced_table(
    command: list[str], settings: Settings, db: sessionmaker[Session]
) -> None:
    """`status` and `connections list` read exact-sync's own tables only: `models` builds the synced ones on
    first use, so these commands start without them (nor Celery, httpx, Alembic, structlog)."""
    with db.begin() as session:
        session.add(Connection(name="acme", region="nl"))
    code = (
        "import contextlib, io\n"
        "from worker.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        f"    app({command!r}, prog_name='exact-sync')\n"
        "assert 'acme' in out.getvalue(), out.getvalue()"
    )
    env = {**os.environ, **settings_env(settings)}
    assert loaded_after(code, NOT_FOR_READING_STATE, env) == []
