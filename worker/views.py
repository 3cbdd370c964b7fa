"""Rich renderings for the CLI (tables only; no I/O besides what the caller passes in)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from models import Connection, ConnectionStatus, ConnectionToken, Division, SyncRun
from syncs.core.clock import to_datetime
from syncs.core.settings import Settings
from syncs.lifecycle.connections import ConnectionReport
from syncs.tokens.failures import next_refresh_attempt  # light: no cryptography, no Redis
from worker.durations import duration_text

STATUS_STYLE = {
    ConnectionStatus.ACTIVE: "green",
    ConnectionStatus.REAUTH_REQUIRED: "red",
    ConnectionStatus.DISABLED: "yellow",
}
RUN_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan", "skipped": "yellow"}


def shown(text: str) -> str:
    """Text from the database as the terminal may show it: control characters escaped, rich markup inert."""
    return escape("".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text))


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value else "-"


def connections_table(connections: Iterable[Connection]) -> Table:
    table = Table(title="Connections")
    for column in ("name", "region", "division", "every"):
        table.add_column(column, overflow="fold")
    for column in ("status", "next sync", "last sync"):
        table.add_column(column, no_wrap=True)  # a date or a state split over two lines is hard to read
    for c in connections:
        table.add_row(
            shown(c.name),
            c.region,
            str(c.current_division) if c.current_division is not None else "(ask Exact)",
            f"{c.sync_interval_minutes} min",
            f"[{STATUS_STYLE[c.status]}]{c.status.value}[/]",
            _next_sync(c),
            when(c.last_sync_at),
        )
    return table


def _next_sync(connection: Connection) -> str:
    if connection.status != ConnectionStatus.ACTIVE:
        return "- (not scheduled)"
    if connection.paused:
        return "- (paused)"
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
        text += f"\n[red]{shown(run.error)}[/]"
    return text


def age(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    seconds = max(0, int((now - value).total_seconds()))
    days, rest = divmod(seconds, 86400)
    return f"{days} d {rest // 3600} h" if days else f"{rest // 3600} h {rest % 3600 // 60} min"


def token_summary(token: ConnectionToken | None, settings: Settings | None, now: datetime) -> str:
    """Access-token expiry, last refresh, refresh-token age (Exact drops it at 30 days), errors and backoff."""
    if token is None:
        return "missing (connect it: `exact-sync connect NAME`)"
    lines = [
        f"access token expires {when(token.expires_at)}",
        f"last refresh {when(token.last_refresh_at)}",
        f"refresh token age {age(token.refresh_token_issued_at, now)} (Exact: 30 d)",
    ]
    if token.last_refresh_error:
        lines.append(f"[red]last refresh error ({when(token.last_refresh_error_at)}): {token.last_refresh_error}[/]")
        retry_at = next_refresh_attempt(token, settings) if settings is not None else None
        if retry_at is not None and to_datetime(retry_at) > now:
            lines.append(f"next refresh attempt after {when(to_datetime(retry_at))}")
    return "\n".join(lines)


def division_state(d: Division) -> str:
    if not d.available:
        return f"[red]unavailable[/]: {shown(d.unavailable_reason or 'refused by Exact')}"
    return "[green]synced[/]" if d.sync_enabled else "[yellow]not synced[/]"


def divisions_table(name: str, divisions: Iterable[Division]) -> Table:
    table = Table(title=f"Divisions of {shown(name)}")
    for column in ("code", "description", "Exact status", "current", "state", "last synced"):
        table.add_column(column, overflow="fold")
    for d in divisions:
        status = {0: "inactive", 1: "active", 2: "archived"}.get(d.status, "-") if d.status is not None else "-"
        table.add_row(
            str(d.code),
            shown(d.description or "-"),
            status,
            "*" if d.is_current else "",
            division_state(d),
            when(d.last_synced_at),
        )
    return table


def status_view(
    reports: Sequence[ConnectionReport], settings: Settings | None = None, now: datetime | None = None
) -> RenderableType:
    """Per connection: a field/value card (reads at 80 columns: no date is ever split), then its entities."""
    now = now or datetime.now().astimezone()
    parts: list[RenderableType] = []
    for report in reports:
        c = report.connection
        state = f"[{STATUS_STYLE[c.status]}]{c.status.value}[/]"
        if c.status_reason:
            state += f"\n{shown(c.status_reason)}"
        card = Table(
            title=f"Connection {shown(c.name)}", show_header=False, box=box.SIMPLE, pad_edge=False, title_justify="left"
        )
        card.add_column("field", no_wrap=True, style="bold")
        card.add_column("value", overflow="fold")
        divisions = "\n".join(
            f"{d.code}{' *' if d.is_current else ''} {division_state(d)}, last synced {when(d.last_synced_at)}"
            for d in report.divisions
        )
        for field, value in (
            ("state", state),
            ("next sync", _next_sync(c)),
            ("last success", when(c.last_sync_at)),
            ("last run", run_summary(report.last_run)),
            ("tokens", token_summary(report.token, settings, now)),
            ("divisions", divisions or "none known yet"),
        ):
            card.add_row(field, value)
        parts += [card, entity_table(report, now)]
    return Group(*parts) if reports else "no connections; add one with `exact-sync connections add`"


def entity_table(report: ConnectionReport, now: datetime) -> Table:
    """One connection's streams per division: how often they are read, the cursor, and how long ago they were
    updated and checked (ages, so the table fits 80 columns without splitting dates)."""
    table = Table(
        title=f"{shown(report.connection.name)}: entities (cursor: highest Exact Timestamp committed)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title_justify="left",
    )
    for column in ("division", "entity", "every", "cursor", "updated", "checked"):
        table.add_column(column, no_wrap=column in ("entity", "updated", "checked"), overflow="fold")
    divisions = {d.code: d for d in report.divisions}
    for cursor in report.cursors:
        division = divisions.get(cursor.division)
        label = str(cursor.division)
        if division is not None and not (division.sync_enabled and division.available):
            label += " (off)"
        position = str(cursor.timestamp)
        if cursor.resume_url is not None:  # a stream cut short keeps its place: the next run resumes it
            position += f"\nresumes next run (committed up to {cursor.pending_timestamp})"
        table.add_row(
            label,
            cursor.entity,
            scheduled_every(report, cursor.entity),
            position,
            _ago(cursor.updated_at, now),
            _ago(cursor.checked_at, now),
        )
    return table


def _ago(moment: datetime | None, now: datetime) -> str:
    return f"{duration_text((now - moment).total_seconds())} ago" if moment is not None else "-"


def scheduled_every(report: ConnectionReport, entity: str) -> str:
    """How often scheduled runs read the stream: its cadence or `connections set --entity` override, or off."""
    if entity not in report.intervals:
        return "every run" if entity == "deleted" else "off"
    interval = report.intervals[entity]
    if interval is None:
        return "every run"
    minutes = int(interval.total_seconds() // 60)
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size} {unit}"
    return f"{minutes} min"


def outcome_table(outcome: Mapping[str, Any]) -> Table:
    table = Table(title=f"Sync of {outcome.get('connection')}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    status = str(outcome.get("status"))
    table.add_row("status", f"[{RUN_STYLE.get(status, 'white')}]{status}[/]")
    for key in ("run_id", "divisions", "skipped_divisions", "inserted", "updated", "deleted", "api_calls", "error"):
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
