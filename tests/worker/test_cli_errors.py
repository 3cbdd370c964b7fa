"""Expected errors print one line, fast, with a non-zero exit; help reads as users expect at 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, SyncCursor
from syncs.core.settings import Settings, get_settings
from tests.support.cli import CliInvoke, settings_env
from tests.support.net import free_port
from worker import cli_support
from worker.cli import app
from worker.views import when

EXACT_SYNC = str(Path(sys.executable).with_name("exact-sync"))


def one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def reconfigure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def test_sync_with_redis_down_fails_at_once_with_one_line(cli: CliInvoke, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("connections", "add", "acme", "--region", "nl", "--refresh-token", "r").exit_code == 0
    reconfigure(monkeypatch, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    started = time.monotonic()
    result = cli("sync", "acme", "--wait")
    assert result.exit_code == 1
    assert "cannot reach Redis" in one_line_error(result.output)
    assert time.monotonic() - started < 10  # not Celery's 20 s of publish retries


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("DATABASE_URL", "notaurl", "DATABASE_URL is not a database URL"), ("REDIS_URL", "notaurl", "REDIS_URL")],
)
def test_a_malformed_url_is_one_line(
    cli: CliInvoke, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    reconfigure(monkeypatch, **{variable: value})
    for args in (("status",), ("connections", "list"), ("sync", "acme")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in one_line_error(result.output)


def test_sync_of_an_unknown_connection_fails_and_queues_nothing(
    cli: CliInvoke, queue_length: Callable[[], int]
) -> None:
    result = cli("sync", "ghost")
    assert result.exit_code == 2
    assert "unknown connection 'ghost'" in one_line_error(result.output) and "queued" not in result.output
    assert queue_length() == 0


def every_command(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer bundles its own click)
            found += every_command(command, (*path, name))
        else:
            found.append((*path, name))
    return found


def test_help_shows_flags_as_flags_and_the_new_commands(cli: CliInvoke) -> None:
    for path in every_command(typer.main.get_command(app)):
        if path == ("bench",):  # hands --help to the benchmark's own parser
            continue
        shown = cli(*path, "--help")
        assert shown.exit_code == 0 and "<bool>" not in shown.output, (path, shown.output)
    assert "--wait / --no-wait" in cli("sync", "--help").output
    top = cli("--help").output
    assert (
        "keys" in top and "invite" in cli("connections", "--help").output and "rotate" in cli("keys", "--help").output
    )
    division = " ".join(cli("connections", "add", "--help").output.split())
    assert "Sync only this division; default: every active division of the login." in division


def test_dates_do_not_wrap_at_80_columns(
    cli: CliInvoke, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("connections", "add", "acme", "--region", "nl", "--refresh-token", "r").exit_code == 0
    next_sync, last_sync = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC), datetime(2026, 11, 29, 23, 4, 5, tzinfo=UTC)
    assert cli("connections", "add", "globex", "--region", "nl", "--refresh-token", "g").exit_code == 0
    with db.begin() as session:
        session.execute(update(Connection).values(next_sync_at=next_sync, last_sync_at=last_sync))
        session.execute(
            update(Connection).where(Connection.name == "globex").values(status=ConnectionStatus.REAUTH_REQUIRED)
        )
        two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
        for entity in ("accounts", "document_attachments"):  # the longest entity name
            session.add(SyncCursor(connection_id=1, division=124132, entity=entity, timestamp=1722256453427,
                                   updated_at=two_hours_ago, checked_at=two_hours_ago))  # fmt: skip
    for console in (cli_support.console, cli_support.err_console):
        monkeypatch.setattr(console, "width", 80)
    for args in (("connections", "list"), ("status",)):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in result.output.splitlines()) <= 80
        with db() as session:
            stored = session.get_one(Connection, 1)
            expected = [when(stored.last_sync_at), when(stored.next_sync_at)]
        states = ["reauth_required"] if args == ("connections", "list") else []  # status adds the reason below
        for text in [*expected, *states]:
            assert text in result.output, (args, text, result.output)
    entities = cli("status").output
    assert "document_attachments" in entities and entities.count("2.0 h ago") == 4, entities  # updated, checked


def test_migrate_succeeds_when_the_secrets_step_cannot_run(cli: CliInvoke, monkeypatch: pytest.MonkeyPatch) -> None:
    reconfigure(monkeypatch, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = cli("migrate")
    assert result.exit_code == 0, result.output
    assert "newest schema" in result.output and "run `exact-sync keys rotate`" in result.output


BAD_REDIS_URL = {"REDIS_URL": "notaurl"}
BAD_DATABASE_URL = {"DATABASE_URL": "notaurl"}


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        # Commands that import worker.app, which reads the settings at import (in process it is already loaded).
        (BAD_REDIS_URL, ("sync", "acme"), "invalid configuration: REDIS_URL"),
        (BAD_REDIS_URL, ("serve",), "invalid configuration: REDIS_URL"),
        (BAD_REDIS_URL, ("doctor",), "invalid configuration: REDIS_URL"),
        (BAD_REDIS_URL, ("health", "worker"), "invalid configuration: REDIS_URL"),
        (BAD_REDIS_URL, ("health", "beat"), "invalid configuration: REDIS_URL"),
        (BAD_REDIS_URL, ("worker", "--no-restart", "--pool", "solo"), "invalid configuration: REDIS_URL"),
        (BAD_REDIS_URL, ("beat",), "invalid configuration: REDIS_URL"),
        # Long-running commands check the database URL before they start (else: a worker failing every task).
        (BAD_DATABASE_URL, ("worker", "--no-restart", "--pool", "solo"), "DATABASE_URL is not a database URL"),
        (BAD_DATABASE_URL, ("beat",), "DATABASE_URL is not a database URL"),
    ],
)
def test_bad_settings_are_one_line_in_a_fresh_process(
    settings: Settings, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    done = subprocess.run(
        [EXACT_SYNC, *args], env={**os.environ, **settings_env(settings), **env}, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in one_line_error(done.stderr)


def test_doctor_reports_an_unparsable_database_url_as_a_failed_check(settings: Settings) -> None:
    done = subprocess.run(
        [EXACT_SYNC, "doctor", "--json"], env={**os.environ, **settings_env(settings), **BAD_DATABASE_URL},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    checks = {check["name"]: check for check in json.loads(done.stdout)["checks"]}
    assert checks["postgres"]["level"] == "FAIL" and "ArgumentError" in checks["postgres"]["detail"]
    assert checks["redis"]["level"] == "OK"  # the rest is still checked
