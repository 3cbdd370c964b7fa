"""`exact-sync connect NAME` (OAuth in the terminal and a browser), `exact-sync serve` (the same over HTTP, for
invited users) and `exact-sync connections invite NAME` (the single-use links `serve` answers to)."""

from __future__ import annotations

import os
import sys
import webbrowser
from typing import TYPE_CHECKING, Annotated, Any

import typer

from syncs.core.regions import REGIONS
from worker.cli_connections import connections_app
from worker.cli_support import configure_logging, console, current_settings, expected_errors

if TYPE_CHECKING:
    from syncs.lifecycle.connect_flow import Connected

# The connect flow, Redis, the database and HTTP are imported inside the commands (fast start, see worker.cli).


def browser_available() -> bool:
    """A browser can only open where there is a display (not over ssh or in a container)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_browser(url: str) -> None:
    webbrowser.open(url, new=2)


@expected_errors
def connect(
    name: Annotated[str, typer.Argument(help="Connection name (new, or an existing one to reconnect).")],
    region: Annotated[
        str | None,
        typer.Option(help=f"Exact Online region: {', '.join(REGIONS)}; default: an existing connection's."),
    ] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Only print the URL.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the consent.")] = 600.0,
) -> None:
    """Connect (or reconnect) through Exact's consent page; the callback arrives on EXACT_REDIRECT_URI."""
    import redis

    from syncs.core.db import session_factory
    from syncs.lifecycle.connect_flow import ConnectError, ConnectFlow
    from worker.auto_subscribe import request_auto_subscribe
    from worker.callback import CallbackReceiver

    settings = current_settings()
    redis_client: redis.Redis[Any] = redis.Redis.from_url(settings.redis_url)
    try:
        flow = ConnectFlow(settings, session_factory(settings.database_url), redis_client)
        receiver: CallbackReceiver[Connected] = CallbackReceiver(settings.exact_redirect_uri)
        try:
            url, state = flow.begin(name, region)
            console.print(f"Open this address to give consent (it is valid for one use):\n{url}", soft_wrap=True)
            if not no_browser and browser_available():
                open_browser(url)
            console.print(f"waiting for Exact Online's redirect to {settings.exact_redirect_uri} ...")

            def finish(params: dict[str, str]) -> Connected:
                return flow.complete(
                    params.get("state"),
                    params.get("code"),
                    params.get("error"),
                    params.get("error_description"),
                    expected_state=state,
                )

            def expired() -> Exception:
                flow.abandon(state)
                return ConnectError(f"no consent within {timeout:g} s; nothing was stored")

            done = receiver.wait(state, finish, timeout, expired)
        finally:
            receiver.close()
    finally:
        redis_client.close()
    print_connected(done)
    request_auto_subscribe(settings, done.name)


def print_connected(done: Connected) -> None:
    from rich.table import Table

    verb = "reconnected (tokens replaced; cursors and data kept)" if done.reconnected else "connected"
    console.print(f"connection [bold]{done.name}[/] ({done.region}) {verb}")
    if done.divisions_error:
        console.print(f"[yellow]could not list divisions yet ({done.divisions_error}); the first sync retries[/]")
        return
    table = Table(title="Divisions")
    for column in ("code", "description", "status", "current"):
        table.add_column(column)
    for d in done.divisions:
        table.add_row(str(d.code), d.description or "-", "-" if d.status is None else str(d.status), "*" * d.is_current)
    console.print(table)
    console.print("choose which are synced with `exact-sync connections divisions NAME --include/--exclude`")


@connections_app.command("invite")
@expected_errors
def invite(
    name: Annotated[str, typer.Argument(help="Connection to create (or an existing one to reconnect).")],
    region: Annotated[
        str | None,
        typer.Option(help=f"Exact Online region: {', '.join(REGIONS)}; an existing connection keeps its own."),
    ] = None,
    expires: Annotated[str, typer.Option(help="How long the link is valid: 30m, 24h, 7d (at most 30d).")] = "24h",
) -> None:
    """Print a single-use link to `serve`'s connect page for NAME (send it to whoever gives consent)."""
    from syncs.core.crypto import TokenCipher
    from syncs.core.db import session_factory
    from syncs.lifecycle.invites import create_invite, parse_duration

    settings = current_settings()
    key = settings.token_encryption_key
    made = create_invite(
        settings,
        session_factory(settings.database_url),
        TokenCipher(key.get_secret_value() if key else None),
        name,
        region,
        parse_duration(expires),
    )
    what = "reconnects" if made.reconnect else "connects"
    console.print(f"{made.url}", soft_wrap=True)
    console.print(
        f"single use; {what} [bold]{made.name}[/] ({made.region}); valid until {made.expires_at:%Y-%m-%d %H:%M} UTC",
        soft_wrap=True,
    )


@expected_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default WEB_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default WEB_PORT).")] = None,
) -> None:
    """Serve invite-based /connect/NAME, the OAuth callback and /health (put it behind TLS)."""
    import uvicorn

    from worker.web import create_web_app

    settings = current_settings()
    configure_logging(settings)
    app = create_web_app(settings)  # builds the connect flow: a missing TOKEN_ENCRYPTION_KEY fails here, at startup
    # No access log: request lines carry invites, codes and states in their query strings.
    uvicorn.run(
        app,
        host=host or settings.web_host,
        port=port or settings.web_port,
        lifespan="off",
        access_log=False,
    )
