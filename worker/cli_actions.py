"""`exact-sync proxy` and `exact-sync action`: JSON in, JSON out on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from syncs.core.errors import ConfigurationError, ExactRequestError
from worker import cli_support
from worker.cli_support import EXIT_USAGE, console, current_settings, err_console, expected_errors, fail

if TYPE_CHECKING:
    from syncs.actions.declaration import Action, Param

# The actions and the proxy (SQLAlchemy, httpx, Redis) are imported in the commands that use them: the CLI's
# other commands and --help start without them.

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
    from syncs.lifecycle.clients import proxy

    body = read_json(data, "--data") if data is not None else None
    settings = current_settings()
    cli_support.configure_logging(settings)  # logs to stderr: stdout is Exact's JSON
    try:
        result = proxy(settings, connection, method, path, division=division, data=body, all_pages=all_pages)
    except ExactRequestError as exc:
        if exc.body:
            console.print(exc.body.decode(errors="replace"), markup=False, soft_wrap=True)
        raise fail(f"Exact answered {exc.status_code}: {exc}") from None
    if result.body is None:
        console.print(f"{result.status} (no content)")
    else:
        print_json(result.body)


def _describe_fields(action: Action) -> str:
    def one(param: Param) -> str:
        extra = [param.kind.value]
        if param.required:
            extra.insert(0, "required")
        if param.choices:
            extra.append("one of " + "/".join(map(str, param.choices)))
        if param.references:
            extra.append(f"-> {param.references}")
        if param.max_length:
            extra.append(f"max {param.max_length}")
        if param.max_bytes:
            extra.append(f"max {param.max_bytes} bytes")
        if param.lookup:
            extra.append(f"empty: the division's only {param.lookup.what}")
        return f"{param.name} ({', '.join(extra)})"

    parts = [one(param) for param in action.params]
    if action.lines is not None:
        lines = action.lines
        inner = ", ".join(one(param) for param in lines.params)
        need = f"; each needs {' or '.join(lines.one_of)}" if lines.one_of else ""
        parts.append(f"{lines.name} ({lines.min_count}-{lines.max_count} lines{need}: {inner})")
    if action.marker:
        parts.append(f"marker: {action.marker}")
    return "; ".join(parts) or "-"


def list_actions() -> None:
    from syncs.actions.catalog import ACTIONS

    table = Table("action", "what it does", "fields", show_lines=True)
    for action in ACTIONS.values():
        table.add_row(action.name, action.doc, _describe_fields(action))
    console.print(table)


@expected_errors
def action_command(
    name: Annotated[str | None, typer.Argument(help="Action, e.g. accounts.create (see --list).")] = None,
    connection: Annotated[str | None, typer.Argument(help="Connection name.")] = None,
    division: DivisionOption = None,
    payload: Annotated[str | None, typer.Option("--json", help="The payload: JSON, or @file.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Idempotency key (default: derived).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List every action with its fields.")] = False,
) -> None:
    """Run an action (create/update/delete/get/list) in this process; prints the result as JSON."""
    from syncs.actions.perform import perform
    from syncs.actions.validate import ActionValidationError

    if list_:
        list_actions()
        return
    if name is None or connection is None:
        raise ConfigurationError("usage: exact-sync action NAME CONNECTION --json PAYLOAD|@file (or --list)")
    body = read_json(payload, "--json") if payload is not None else {}
    settings = current_settings()
    cli_support.configure_logging(settings)  # logs to stderr: stdout is the result's JSON
    try:
        result = perform(settings, connection, name, body, division=division, idempotency_key=key)
    except ActionValidationError as exc:
        for field, message in exc.errors.items():
            err_console.print(f"  {field}: {message}", markup=False, soft_wrap=True)
        raise fail(f"{name}: the payload was refused before any call to Exact", EXIT_USAGE) from None
    print_json(result)
