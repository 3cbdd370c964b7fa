"""Rich renderings for the CLI (tables only; no I/O besides what the caller passes in)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from models import Connection, ConnectionStatus, SyncRun
from syncs.connections import ConnectionReport

STATUS_STYLE = {
    ConnectionStatus.ACTIVE: "green",
    ConnectionStatus.REAUTH_REQUIRED: "red",
    ConnectionStatus.DISABLED: "yellow",
}
RUN_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan", "skipped": "yellow"}


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value else "-"


def connections_table(connections: Iterable[Connection]) -> Table:
    table = Table(title="Connections")
    for column in ("name", "region", "status", "division", "every", "next sync", "last sync"):
        table.add_column(column)
    for c in connections:
        table.add_row(
            c.name,
            c.region,
            f"[{STATUS_STYLE[c.status]}]{c.status.value}[/]",
            str(c.current_division) if c.current_division is not None else "(ask Exact)",
            f"{c.sync_interval_minutes} min",
            _next_sync(c),
            when(c.last_sync_at),
        )
    return table


def _next_sync(connection: Connection) -> str:
    if connection.status != ConnectionStatus.ACTIVE:
        return "- (not scheduled)"
    return when(connection.next_sync_at) if connection.next_sync_at else "due"


def run_summary(run: SyncRun | None) -> str:
    if run is None:
        return "no runs yet"
    style = RUN_STYLE.get(run.status, "white")
    text = (
        f"run #{run.id} [{style}]{run.status}[/] ({run.trigger}) started {when(run.started_at)}"
        f", +{run.rows_inserted} ~{run.rows_updated} -{run.rows_deleted} rows, {run.api_calls} API calls"
    )
    if run.error:
        text += f"\n[red]{run.error}[/]"
    return text


def status_view(reports: Sequence[ConnectionReport]) -> RenderableType:
    overview = Table(title="Connections", show_lines=True)
    for column in ("name", "state", "next sync", "last success", "last run", "refresh token"):
        overview.add_column(column, overflow="fold")
    cursors = Table(title="Cursors (highest Exact Timestamp committed)")
    for column in ("connection", "division", "entity", "timestamp", "updated"):
        cursors.add_column(column)
    for report in reports:
        c = report.connection
        state = f"[{STATUS_STYLE[c.status]}]{c.status.value}[/]"
        if c.status_reason:
            state += f"\n{c.status_reason}"
        token = "missing"
        if report.token is not None:
            token = f"issued {when(report.token.refresh_token_issued_at)}"
            if report.token.last_refresh_error:
                token += f"\n[red]last refresh error: {report.token.last_refresh_error}[/]"
        overview.add_row(
            c.name,
            state,
            _next_sync(c),
            when(c.last_sync_at),
            run_summary(report.last_run),
            token,
        )
        divisions = {d.code: d for d in report.divisions}
        for cursor in report.cursors:
            division = divisions.get(cursor.division)
            label = str(cursor.division)
            if division is not None and not (division.sync_enabled and division.available):
                label += " (off)"
            cursors.add_row(c.name, label, cursor.entity, str(cursor.timestamp), when(cursor.updated_at))
    return Group(overview, cursors) if reports else "no connections; add one with `exact-sync connections add`"


def outcome_table(outcome: Mapping[str, Any]) -> Table:
    table = Table(title=f"Sync of {outcome.get('connection')}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    status = str(outcome.get("status"))
    table.add_row("status", f"[{RUN_STYLE.get(status, 'white')}]{status}[/]")
    for key in ("run_id", "divisions", "inserted", "updated", "deleted", "api_calls", "error"):
        value = outcome.get(key)
        if value not in (None, [], ()):
            table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value))
    return table


def counts_table(counts: Mapping[str, tuple[int, int]]) -> Table:
    table = Table(title="Rows in Postgres")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("of which deleted in Exact", justify="right")
    for name, (total, deleted) in counts.items():
        table.add_row(name, str(total), str(deleted))
    return table
