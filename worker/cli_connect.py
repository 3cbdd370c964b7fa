"""`exact-sync connect NAME` (OAuth in the terminal and a browser) and `exact-sync serve` (the same over HTTP)."""

from __future__ import annotations

import os
import sys
import webbrowser
from typing import Annotated, Any

import redis
import typer
from rich.table import Table

from syncs.core.db import session_factory
from syncs.core.settings import REGIONS
from syncs.lifecycle.connect_flow import Connected, ConnectError, ConnectFlow
from worker.callback import CallbackReceiver
from worker.cli_support import console, current_settings, expected_errors


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

            done = receiver.wait(finish, timeout, expired)
        finally:
            receiver.close()
    finally:
        redis_client.close()
    print_connected(done)


def print_connected(done: Connected) -> None:
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


@expected_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default WEB_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default WEB_PORT).")] = None,
) -> None:
    """Serve /connect/NAME, the OAuth callback and /health (put it behind an authenticating proxy)."""
    import uvicorn

    from worker.web import create_web_app

    settings = current_settings()
    app = create_web_app(settings)  # builds the connect flow: a missing TOKEN_ENCRYPTION_KEY fails here, at startup
    uvicorn.run(app, host=host or settings.web_host, port=port or settings.web_port, lifespan="off")
