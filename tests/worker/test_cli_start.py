"""The CLI starts without its heavy libraries: `--help` and quick commands import them only when they use them
(the benchmark, bench/cli_start.py, times the start; no timing is asserted here)."""

from __future__ import annotations

import subprocess
import sys

from tests.worker.conftest import ROOT

HEAVY = ("sqlalchemy", "httpx", "redis", "psycopg", "celery", "alembic", "starlette", "uvicorn", "kombu")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
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
