"""The status page `serve` shows at /dashboard: one server-rendered HTML page, no scripts to build.

Connections with their state, tokens and divisions; per-entity freshness; each rate bucket's API calls over the last
24 hours as an inline SVG bar chart with its budget; recent runs with rows per entity and errors; the commands to
copy for common fixes. Entities come from the registry and everything else from the database and Redis, so a new
entity, connection or division shows up without changes here. Every value is HTML-escaped (names are user input).
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Any

import redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session, sessionmaker

from models import ConnectionStatus, SyncRun
from syncs.core.clock import Clock
from syncs.core.settings import Settings
from syncs.lifecycle.connections import ConnectionReport, connection_reports
from syncs.limits.callstats import CallStats, HourlyCalls
from syncs.limits.ratelimit import RateGate, RateState
from worker.durations import duration_text
from worker.freshness import expected_intervals
from worker.ops_state import REFRESH_TOKEN_LIFETIME_SECONDS, entity_last_success, recent_runs, watched_entities
from worker.webhook_report import DeliveryCount, SubscriptionReport, delivery_counts, subscription_reports

CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 288, 64, 2
BAR_COLOUR = "#2563eb"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1f2933}
header{background:#1f2933;color:#fff;padding:10px 20px;display:flex;justify-content:space-between}
main{padding:12px 20px;max-width:1400px}
h2{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:8px}
th,td{border-bottom:1px solid #e4e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}
.ok{color:#0f7b3f}.warn{color:#b45309}.fail{color:#b91c1c;font-weight:600}.dim{color:#7b8794}
code{background:#eef1f4;padding:1px 4px;border-radius:3px;font-size:12px;white-space:nowrap}
button.copy{font-size:11px;margin-left:4px;cursor:pointer}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{background:#fff;border:1px solid #e4e7eb;padding:8px}
"""

COPY_SCRIPT = """
document.addEventListener('click', function (e) {
  var b = e.target.closest('button.copy'); if (!b) return;
  navigator.clipboard.writeText(b.dataset.copy).then(function () { b.textContent = 'copied'; });
});
"""


def _digest(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Only the page's own inline style and copy script run; nothing loads from elsewhere, nothing frames the page.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_digest(STYLE)}; script-src {_digest(COPY_SCRIPT)}; frame-ancestors 'none'"
)


def render_dashboard(
    settings: Settings, sessions: sessionmaker[Session], redis_client: redis.Redis[Any], clock: Clock
) -> str:
    now = clock.now()
    with sessions() as session:
        reports = connection_reports(session)
        freshness = entity_last_success(session)
        runs = recent_runs(session, 25)
        intervals = {
            report.connection.id: expected_intervals(session, settings, redis_client, report.connection, now)
            for report in reports
        }
        subscriptions = subscription_reports(session, settings, redis_client)
        deliveries = delivery_counts(session)
    sections = [
        _connections(reports, now),
        _freshness(reports, freshness, intervals, now),
        _divisions(reports, now),
        _api_calls(settings, redis_client, clock, reports),
        _webhooks(subscriptions, deliveries, now),
        _runs(runs),
    ]
    stamp = _when(now)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta http-equiv=refresh content="60"><title>exact-sync status</title>'
        f"<style>{STYLE}</style></head><body>"
        f"<header><strong>exact-sync</strong><span>{len(reports)} connection(s) &middot; {stamp}</span></header>"
        f"<main>{''.join(sections)}</main><script>{COPY_SCRIPT}</script></body></html>"
    )


def _connections(reports: list[ConnectionReport], now: float) -> str:
    rows = []
    for report in reports:
        connection, token = report.connection, report.token
        name = connection.name
        state = connection.status.value + (" (paused)" if connection.paused else "")
        level = {"active": "ok", "reauth_required": "fail", "disabled": "warn"}[connection.status.value]
        reason = f"<br><span class=dim>{escape(connection.status_reason)}</span>" if connection.status_reason else ""
        fixes = []
        if connection.status != ConnectionStatus.ACTIVE:  # a link for the company's user, or consent here
            fixes.append(_command(f"exact-sync connections invite {shlex.quote(name)}"))
            fixes.append(_command(f"exact-sync connect {shlex.quote(name)} --region {shlex.quote(connection.region)}"))
        if connection.paused:
            fixes.append(_command(f"exact-sync connections set {shlex.quote(name)} --resume"))
        fixes.append(_command(f"exact-sync sync {shlex.quote(name)} --wait"))
        rows.append(
            _row(
                f"<strong>{escape(name)}</strong>",
                escape(connection.region),
                f"<span class={level}>{escape(state)}</span>{reason}",
                f"every {connection.sync_interval_minutes} min",
                _ago(connection.last_sync_at, now),
                _tokens(token, now) if token is not None else "<span class=fail>none stored</span>",
                "<br>".join(fixes),
            )
        )
    return _table(
        "Connections",
        ("connection", "region", "state", "schedule", "last sync", "tokens", "fix / action"),
        rows,
        "no connections yet: exact-sync connect NAME --region nl",
    )


def _tokens(token: Any, now: float) -> str:
    age = now - token.refresh_token_issued_at.timestamp()
    left = REFRESH_TOKEN_LIFETIME_SECONDS - age
    level = "fail" if left <= 0 else "warn" if left < 7 * 86400 else "ok"
    parts = [f"refresh token {age / 86400:.1f} d old, <span class={level}>expires in {left / 86400:.1f} d</span>"]
    if token.refresh_failures:
        error = escape(token.last_refresh_error or "")
        parts.append(f"<span class=warn>{token.refresh_failures} failed refresh(es)</span> {error}")
    return "<br>".join(parts)


def _freshness(
    reports: list[ConnectionReport],
    freshness: dict[tuple[int, str], datetime],
    intervals: dict[int, dict[str, float]],
    now: float,
) -> str:
    """Each entity's last succeeded sync, coloured against its own expected interval (cadence, webhooks)."""
    rows = []
    for report in reports:
        connection = report.connection
        expected = intervals[connection.id]
        for entity in watched_entities(connection.id, freshness, expected):
            interval = expected.get(entity, connection.sync_interval_minutes * 60)
            finished = freshness.get((connection.id, entity))
            if finished is None:
                age = "<span class=dim>never</span>"
            else:
                seconds = now - finished.timestamp()
                level = "ok" if seconds <= 2 * interval else "warn" if seconds <= 4 * interval else "fail"
                age = f"<span class={level}>{duration_text(seconds)} ago</span>"
            resync = _command(f"exact-sync sync {shlex.quote(connection.name)} -e {shlex.quote(entity)} --full")
            rows.append(_row(escape(connection.name), escape(entity), f"every {duration_text(interval)}", age, resync))
    header = ("connection", "entity", "expected", "last succeeded sync", "resync it from scratch")
    return _table("Freshness (the default entities and any other synced)", header, rows)


def _divisions(reports: list[ConnectionReport], now: float) -> str:
    rows = []
    for report in reports:
        for division in report.divisions:
            if not division.available:
                state = f"<span class=fail>unavailable</span> {escape(division.unavailable_reason or '')}"
            elif not division.sync_enabled:
                state = "<span class=dim>not synced</span>"
            else:
                state = "<span class=ok>synced</span>"
            rows.append(
                _row(
                    escape(report.connection.name),
                    str(division.code) + (" (current)" if division.is_current else ""),
                    escape(division.description or ""),
                    state,
                    _ago(division.last_synced_at, now),
                )
            )
    return _table("Divisions", ("connection", "division", "description", "state", "last complete sync"), rows)


def _api_calls(
    settings: Settings, redis_client: redis.Redis[Any], clock: Clock, reports: list[ConnectionReport]
) -> str:
    names: dict[str, list[str]] = {}
    for report in reports:
        for division in report.divisions:
            names.setdefault(str(division.code), []).append(report.connection.name)
    try:
        hourly = CallStats(redis_client, settings.redis_key_prefix, clock).hourly(24)
        gate = RateGate(redis_client, settings.redis_key_prefix, clock)
        budgets = {division: gate.status(division) for division in hourly.calls}
    except (RedisError, OSError) as exc:
        return f"<h2>API calls, last 24 hours</h2><p class=fail>Redis unavailable: {escape(type(exc).__name__)}</p>"
    charts = [
        _chart(division, names.get(division, []), hourly, budgets[division], clock.now()) for division in hourly.calls
    ]
    body = "".join(charts) or "<p class=dim>no API calls in the last 24 hours</p>"
    return f"<h2>API calls per hour, last 24 hours</h2><div class=charts>{body}</div>"


def _chart(division: str, connections: list[str], hourly: HourlyCalls, budget: RateState, now: float) -> str:
    counts = hourly.calls[division]
    top = max(max(counts), 1)
    width = CHART_WIDTH / len(counts)
    bars = []
    for index, (hour, count) in enumerate(zip(hourly.hours, counts, strict=True)):
        height = round(CHART_HEIGHT * count / top, 1)
        label = f"{datetime.fromtimestamp(hour, UTC):%H:00} UTC: {count} calls"
        bars.append(
            f'<rect x="{index * width + BAR_GAP / 2:.1f}" y="{CHART_HEIGHT - height}" width="{width - BAR_GAP:.1f}" '
            f'height="{height}" fill="{BAR_COLOUR}"><title>{label}</title></rect>'
        )
    svg = (
        f'<svg class=calls-chart data-division="{escape(division)}" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT + 1}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT + 1}" role=img '
        f'aria-label="API calls per hour for division {escape(division)}">'
        f'{"".join(bars)}<line x1="0" y1="{CHART_HEIGHT + 0.5}" x2="{CHART_WIDTH}" y2="{CHART_HEIGHT + 0.5}" '
        'stroke="#9aa5b1"/></svg>'
    )
    who = escape(", ".join(sorted(set(connections)))) or "rate bucket"
    return (
        f"<div class=chart><strong>{escape(division)}</strong> <span class=dim>{who}</span><br>{svg}<br>"
        f"<span class=dim>{sum(counts)} calls in 24 h (now on the right), peak {max(counts)}/h</span><br>"
        f"{_budget(budget, now)}</div>"
    )


def _budget(state: RateState, now: float) -> str:
    parts = []
    for window, left, limit in (
        ("daily", state.daily_remaining, state.daily_limit),
        ("minutely", state.minutely_remaining, state.minutely_limit),
    ):
        if left is None:
            continue
        low = window == "daily" and limit and left < 0.1 * limit
        parts.append(f"<span class={'warn' if low else 'ok'}>{window}: {left} of {limit or '?'} left</span>")
    if state.blocked_until and state.blocked_until > now:
        parts.append(f"<span class=warn>429: waiting {state.blocked_until - now:.0f} s</span>")
    return " &middot; ".join(parts) or "<span class=dim>budget not reported yet</span>"


def _webhooks(subscriptions: list[SubscriptionReport], deliveries: list[DeliveryCount], now: float) -> str:
    """Exact's webhooks in (subscriptions, last event, how the topic is polled) and ours out (deliveries)."""
    if not subscriptions and not deliveries:
        return ""
    rows = [
        _row(
            escape(sub.connection),
            str(sub.division),
            escape(sub.topic),
            _ago(sub.last_event, now),
            str(sub.waiting) if sub.waiting else "-",
            f"<span class={'ok' if sub.healthy else 'warn'}>{escape(sub.polling)}</span>",
        )
        for sub in subscriptions
    ]
    section = (
        _table("Webhooks from Exact", ("connection", "division", "topic", "last event", "waiting", "polling"), rows)
        if subscriptions
        else ""
    )
    outgoing: dict[str, dict[str, int]] = {}
    for count in deliveries:
        outgoing.setdefault(count.connection, {})[count.status] = count.deliveries
    out_rows = []
    for name, by_status in outgoing.items():
        failed = by_status.get("failed", 0)
        fix = _command(f"exact-sync webhooks replay --failed {shlex.quote(name)}") if failed else ""
        out_rows.append(
            _row(
                escape(name),
                str(by_status.get("delivered", 0)),
                str(by_status.get("pending", 0)),
                f"<span class=fail>{failed}</span>" if failed else "0",
                fix,
            )
        )
    if out_rows:
        section += _table("Outgoing webhooks", ("connection", "delivered", "pending", "failed", "fix"), out_rows)
    return section


def _runs(runs: list[tuple[str, SyncRun]]) -> str:
    rows = []
    for name, run in runs:
        level = {"succeeded": "ok", "failed": "fail", "running": "warn"}.get(run.status, "dim")
        duration = duration_text((run.finished_at - run.started_at).total_seconds()) if run.finished_at else "running"
        per_entity = "<br>".join(
            f"{escape(entity)}: +{c.get('inserted', 0)} ~{c.get('updated', 0)} -{c.get('deleted', 0)}"
            for entity, c in sorted(run.rows_by_entity.items())
            if any(c.values())
        )
        rows.append(
            _row(
                str(run.id),
                escape(name),
                escape(run.trigger) + (" (full)" if run.full else ""),
                f"<span class={level}>{escape(run.status)}</span>",
                _when(run.started_at.timestamp()),
                duration,
                per_entity or "<span class=dim>no changes</span>",
                str(run.api_calls),
                f"<span class=fail>{escape(run.error)}</span>" if run.error else "",
            )
        )
    header = ("run", "connection", "trigger", "status", "started", "took", "rows (+new ~updated -deleted)", "calls")
    return _table("Recent runs", (*header, "error"), rows)


def _table(title: str, header: Iterable[str], rows: list[str], empty: str = "nothing yet") -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(rows) or f"<tr><td colspan=9 class=dim>{escape(empty)}</td></tr>"
    return f"<h2>{escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _row(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _command(command: str) -> str:
    quoted = escape(command, quote=True)
    return f'<code>{quoted}</code><button class=copy type=button data-copy="{quoted}">copy</button>'


def _ago(moment: datetime | None, now: float) -> str:
    if moment is None:
        return "<span class=dim>never</span>"
    return f"{duration_text(now - moment.timestamp())} ago"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
