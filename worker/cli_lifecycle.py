"""`exact-sync connections divisions|export|import`: which divisions are synced, and moving a connection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from worker.cli_connections import connections_app
from worker.cli_support import console, current_settings, err_console, expected_errors

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models import Division
    from syncs.core.settings import Settings

# Database modules are imported inside the commands (fast start, see worker.cli).

PASSPHRASE_ENV = "EXACT_SYNC_EXPORT_PASSPHRASE"


@connections_app.command("divisions")
@expected_errors
def divisions(
    name: Annotated[str, typer.Argument()],
    include: Annotated[
        list[int] | None, typer.Option("--include", "-i", help="Sync exactly these divisions (repeatable).")
    ] = None,
    exclude: Annotated[
        list[int] | None, typer.Option("--exclude", "-x", help="Sync every active division but these.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Back to the default: every active division.")] = False,
) -> None:
    """List a connection's divisions, or choose which are synced (default: all active ones, Status 1)."""
    from syncs.core.db import session_factory
    from syncs.lifecycle.connections import get_connection_by_name
    from syncs.lifecycle.divisions import choose_divisions
    from worker.views import divisions_table

    with session_factory(current_settings().database_url).begin() as session:
        connection = get_connection_by_name(session, name)
        if include or exclude or all_:
            rows = choose_divisions(session, connection.id, include or (), exclude or ())
        else:
            rows = list(connection_divisions(session, connection.id))
        console.print(divisions_table(name, rows))


def connection_divisions(session: Session, connection_id: int) -> list[Division]:
    from sqlalchemy import select

    from models import Division

    statement = select(Division).where(Division.connection_id == connection_id).order_by(Division.code)
    return list(session.scalars(statement))


def _passphrase(settings: Settings, confirm: bool) -> str:
    if settings.exact_sync_export_passphrase is not None:
        return settings.exact_sync_export_passphrase.get_secret_value()
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    value: str = typer.prompt("Export passphrase", hide_input=True, confirmation_prompt=confirm)
    return value


@connections_app.command("export")
@expected_errors
def export(
    name: Annotated[str, typer.Argument()],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default NAME.exact-sync).")] = None,
) -> None:
    """Write an encrypted copy (connection, tokens, divisions, cursors) and disable the connection here."""
    from syncs.core.db import session_factory
    from syncs.lifecycle.transfer import export_connection

    settings = current_settings()
    passphrase = _passphrase(settings, confirm=True)
    target = out or Path(f"{name}.exact-sync")
    export_connection(settings, session_factory(settings.database_url), name, passphrase, target)
    console.print(
        f"connection [bold]{name}[/] exported to {target} and disabled here, so only the importing deployment "
        f"refreshes its tokens; import it with `exact-sync connections import {target}`"
    )


@connections_app.command("import")
@expected_errors
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option(help="Register under another name.")] = None,
    reset_cursors: Annotated[
        bool,
        typer.Option("--reset-cursors", help="This database lacks the exported side's rows: fetch everything."),
    ] = False,
) -> None:
    """Create an exported connection here, active, resuming from its cursors."""
    from syncs.core.db import session_factory
    from syncs.lifecycle.transfer import import_connection

    settings = current_settings()
    passphrase = _passphrase(settings, confirm=False)
    connection = import_connection(
        settings,
        session_factory(settings.database_url),
        file.read_bytes(),
        passphrase,
        name,
        reset_cursors=reset_cursors,
        warn=lambda message: err_console.print(f"[yellow]warning: {message}[/]", soft_wrap=True),
    )
    console.print(f"connection [bold]{connection.name}[/] imported (active); beat syncs it at its next tick")
