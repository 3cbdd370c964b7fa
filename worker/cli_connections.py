"""`exact-sync connections add|list|remove`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from syncs.core.regions import REGIONS
from worker.cli_support import console, current_settings, expected_errors, fail

if TYPE_CHECKING:
    from syncs.core.settings import Settings

# Database modules are imported inside the commands (fast start, see worker.cli).

connections_app = typer.Typer(no_args_is_help=True, help="Register, list and remove Exact Online connections.")


def register(
    settings: Settings,
    name: str,
    region: str,
    refresh_token: str,
    access_token: str | None = None,
    expires_in: float | None = None,
    division: int | None = None,
    interval: int | None = None,
) -> int:
    """Store a connection and its token pair (encrypted); returns the connection id. Shared with `demo`."""
    from syncs.core.clock import SYSTEM_CLOCK
    from syncs.core.crypto import TokenCipher
    from syncs.core.db import session_factory
    from syncs.lifecycle.connections import add_connection, validate_region
    from syncs.tokens.pair import TokenPair
    from syncs.tokens.store import TokenStore

    validate_region(region)
    key = settings.token_encryption_key.get_secret_value() if settings.token_encryption_key else None
    sessions = session_factory(settings.database_url)
    store = TokenStore(sessions, TokenCipher(key))
    pair = TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        # The access token's age is only known when it came with this command; without one, the first sync
        # refreshes (the refresh token is what matters).
        received_at=SYSTEM_CLOCK.now() if access_token else None,
        expires_in=(expires_in if expires_in is not None else 600.0) if access_token else None,
    )
    with sessions.begin() as session:
        connection = add_connection(
            session,
            store,
            name,
            region,
            pair,
            division=division,
            interval=interval if interval is not None else settings.default_sync_interval_minutes,
        )
        return connection.id


@connections_app.command("add")
@expected_errors
def add(
    name: Annotated[str, typer.Argument(help="A name of your choice, used by every other command.")],
    region: Annotated[str, typer.Option(help=f"Exact Online region: {', '.join(REGIONS)}.")],
    refresh_token: Annotated[
        str,
        typer.Option(
            envvar="EXACT_REFRESH_TOKEN",
            prompt=True,
            hide_input=True,
            help="Refresh token obtained elsewhere (or set EXACT_REFRESH_TOKEN; prompted when missing).",
        ),
    ],
    access_token: Annotated[
        str | None,
        typer.Option(envvar="EXACT_ACCESS_TOKEN", help="Access token issued with the refresh token."),
    ] = None,
    expires_in: Annotated[
        float | None, typer.Option(help="Seconds the access token was valid for when issued (default 600).")
    ] = None,
    division: Annotated[
        int | None, typer.Option(help="Sync only this division; default: every active division of the login.")
    ] = None,
    interval: Annotated[int | None, typer.Option(help="Minutes between scheduled syncs.", min=1)] = None,
) -> None:
    """Import a token pair obtained elsewhere; the tokens are stored encrypted with TOKEN_ENCRYPTION_KEY."""
    if region not in REGIONS:
        raise fail(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}", 2)
    if expires_in is not None and access_token is None:
        raise fail("--expires-in only makes sense with --access-token", 2)
    from worker.auto_subscribe import request_auto_subscribe

    connection_id = register(
        current_settings(), name, region, refresh_token, access_token, expires_in, division, interval
    )
    console.print(f"connection [bold]{name}[/] added (id {connection_id}); beat syncs it at its next tick")
    request_auto_subscribe(current_settings(), name)


@connections_app.command("list")
@expected_errors
def list_() -> None:
    """Show every connection with its state and schedule."""
    from syncs.core.db import session_factory
    from syncs.lifecycle.connections import list_connections
    from worker.views import connections_table

    with session_factory(current_settings().database_url)() as session:
        connections = list_connections(session)
        if not connections:
            console.print("no connections; add one with `exact-sync connections add`")
            return
        console.print(connections_table(connections))


@connections_app.command("remove")
@expected_errors
def remove(name: Annotated[str, typer.Argument()]) -> None:
    """Delete a connection with its tokens, divisions, cursors and run history (synced rows are kept)."""
    from syncs.core.db import session_factory
    from syncs.lifecycle.connections import remove_connection

    with session_factory(current_settings().database_url).begin() as session:
        remove_connection(session, name)
    console.print(f"connection [bold]{name}[/] removed")


@connections_app.command("set")
@expected_errors
def set_schedule(
    name: Annotated[str, typer.Argument()],
    interval: Annotated[int | None, typer.Option(help="Minutes between scheduled syncs.", min=1)] = None,
    pause: Annotated[
        bool | None,
        typer.Option("--pause/--resume", help="Stop or restart scheduled syncs (the tokens are kept alive)."),
    ] = None,
    entity: Annotated[
        list[str] | None,
        typer.Option("--entity", "-e", help="The entity that --every/--on/--off apply to (repeatable)."),
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="How often scheduled runs read --entity: 30m, 4h, 1d (default: its cadence).")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--on/--off", help="Switch --entity on or off for scheduled runs.")
    ] = None,
) -> None:
    """Change a connection's sync interval, pause and resume it, or set an entity's interval or switch."""
    if interval is None and pause is None and not entity:
        raise fail("nothing to change: give --interval, --pause, --resume or --entity with --every/--on/--off", 2)
    if entity and every is None and enabled is None:
        raise fail("--entity needs --every, --on or --off", 2)
    if not entity and (every is not None or enabled is not None):
        raise fail("--every, --on and --off need --entity", 2)
    minutes = parse_every(every) if every is not None else None
    from syncs.core.clock import SYSTEM_CLOCK, to_datetime
    from syncs.core.db import session_factory
    from syncs.engine.cadence import set_entity
    from syncs.entities.registry import ENTITIES
    from syncs.lifecycle.connections import change_schedule
    from worker.views import connections_table

    with session_factory(current_settings().database_url).begin() as session:
        connection = change_schedule(
            session, name, now=to_datetime(SYSTEM_CLOCK.now()), interval=interval, paused=pause
        )
        for each in entity or []:
            try:
                set_entity(session, connection.id, each, enabled=enabled, every_minutes=minutes)
            except KeyError:
                raise fail(f"unknown entity {each!r}; valid: {', '.join(ENTITIES)}", 2) from None
        table = connections_table([connection])
    console.print(table)


def parse_every(text: str) -> int:
    """Minutes from `30m`, `4h`, `1d` or a bare number of minutes."""
    units = {"m": 1, "h": 60, "d": 1440}
    value = text.strip().lower()
    number, unit = (value[:-1], value[-1]) if value and value[-1] in units else (value, "m")
    if not number.isdigit() or int(number) < 1:
        raise fail(f"--every {text!r}: give minutes or a number with m, h or d (30m, 4h, 1d)", 2)
    return int(number) * units[unit]
