"""`exact-sync proxy` (and, with the actions, `exact-sync action`): JSON in, JSON out on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from syncs.core.errors import ConfigurationError, ExactRequestError
from syncs.lifecycle.clients import proxy
from worker.cli_support import console, current_settings, expected_errors, fail

DivisionOption = Annotated[int | None, typer.Option("--division", "-d", help="Division code; default: current.")]


def read_json(value: str, what: str) -> Any:
    """A JSON text, or `@file` naming a file that holds one."""
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not JSON: {exc}") from None


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str), indent=2)


@expected_errors
def proxy_command(
    connection: Annotated[str, typer.Argument(help="Connection name.")],
    method: Annotated[str, typer.Argument(help="GET, POST, PUT or DELETE.")],
    path: Annotated[str, typer.Argument(help="Relative to /api/v1/{division}/, e.g. 'crm/Accounts?$top=5'.")],
    division: DivisionOption = None,
    data: Annotated[str | None, typer.Option("--data", help="JSON body, or @file.")] = None,
    all_pages: Annotated[bool, typer.Option("--all-pages", help="Follow d.__next (GET).")] = False,
) -> None:
    """Call any Exact API path through the connection's auth and budgets; prints Exact's JSON answer."""
    body = read_json(data, "--data") if data is not None else None
    try:
        result = proxy(
            current_settings(), connection, method, path, division=division, data=body, all_pages=all_pages
        )
    except ExactRequestError as exc:
        if exc.body:
            console.print(exc.body.decode(errors="replace"), markup=False, soft_wrap=True)
        raise fail(f"Exact answered {exc.status_code}: {exc}") from None
    if result.body is None:
        console.print(f"{result.status} (no content)")
    else:
        print_json(result.body)
