"""`exact-sync doctor`: every dependency and every connection checked, one line each with what to do.

Checks run in order and never stop early: a dead Postgres still lets Redis, the broker and Exact be checked.
Levels: OK, WARN (works, but needs attention), FAIL (something is broken: the command exits 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
from celery import Celery
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from models import Connection, ConnectionStatus
from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.crypto import TokenCipher
from syncs.core.errors import ConfigurationError
from syncs.core.settings import Settings
from syncs.exact.exact_time import ClockOffsets, OffsetBounds
from syncs.lifecycle.connections import ConnectionReport, connection_reports
from syncs.limits.budgets import synced_divisions
from syncs.limits.ratelimit import RateGate
from syncs.tokens.store import TokenStore
from worker.app import create_app
from worker.clock_view import offset_problem
from worker.health import broker_reachable, leader_held, migration_level, ping_worker
from worker.ops_state import REFRESH_TOKEN_LIFETIME_SECONDS

OK, WARN, FAIL = "OK", "WARN", "FAIL"
TIMEOUT_SECONDS = 5.0
DAY = 86400.0


@dataclass(frozen=True)
class Check:
    name: str
    level: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Context:
    settings: Settings
    clock: Clock
    celery: Celery
    sessions: sessionmaker[Session] | None = None  # set once Postgres answered
    redis: redis.Redis[Any] | None = None  # set once Redis answered
    reports: list[ConnectionReport] | None = None


def run_checks(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> list[Check]:
    context = Context(settings, clock, create_app(settings))
    checks: list[Check] = []
    for step in (_config, _database, _redis, _broker, _worker, _beat, _exact, _connections):
        checks.extend(step(context))
    if context.redis is not None:
        context.redis.close()
    return checks


def _config(context: Context) -> Iterator[Check]:
    settings = context.settings
    if settings.exact_client_id and settings.exact_client_secret is not None:
        yield Check("config: Exact app", OK, f"client id {settings.exact_client_id}")
    else:
        yield Check(
            "config: Exact app", FAIL, "EXACT_CLIENT_ID or EXACT_CLIENT_SECRET is not set",
            "set both to your app's values from Exact's App Center",
        )  # fmt: skip
    key = settings.token_encryption_key.get_secret_value() if settings.token_encryption_key else None
    try:
        TokenCipher(key)
        yield Check("config: encryption key", OK, f"{len([k for k in (key or '').split(',') if k.strip()])} key(s)")
    except ConfigurationError as exc:
        yield Check(
            "config: encryption key", FAIL, str(exc).split(";")[0],
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
        )  # fmt: skip
    yield _redirect_uri(settings.exact_redirect_uri)
    token = settings.serve_admin_token.get_secret_value() if settings.serve_admin_token else ""
    if not token:
        yield Check(
            "config: admin token", WARN, "SERVE_ADMIN_TOKEN is not set: /metrics and /dashboard are off",
            "export SERVE_ADMIN_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )  # fmt: skip
    elif len(token) < 16:
        yield Check("config: admin token", WARN, "SERVE_ADMIN_TOKEN is shorter than 16 characters", "use a longer one")
    else:
        yield Check("config: admin token", OK, "set")


def _redirect_uri(uri: str) -> Check:
    parts = urlsplit(uri)
    name = "config: redirect URI"
    fix = "set EXACT_REDIRECT_URI to the URI registered in Exact's App Center, e.g. https://HOST/oauth/callback"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check(name, FAIL, f"{uri!r} is not an absolute http(s) URL", fix)
    if parts.fragment or parts.query:
        return Check(name, FAIL, f"{uri!r} has a query or fragment (Exact appends its own)", fix)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not local:
        return Check(name, WARN, f"{uri} is plain http on a non-local host: the code travels unencrypted", fix)
    return Check(name, OK, uri)


def _database(context: Context) -> Iterator[Check]:
    url = context.settings.database_url
    engine = None
    try:  # a URL SQLAlchemy cannot parse fails in create_engine: a FAIL line like an unreachable server
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": int(TIMEOUT_SECONDS)})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        level = migration_level(engine, url)
    except Exception as exc:
        missing = "does not exist" in str(exc)
        fix = "exact-sync migrate (creates the database)" if missing else "check DATABASE_URL and that Postgres runs"
        yield Check("postgres", FAIL, _error(exc), fix)
        return
    finally:
        if engine is not None:
            engine.dispose()
    yield Check("postgres", OK, f"{urlsplit(url).hostname}:{urlsplit(url).port or 5432}")
    if level.at_head:
        yield Check("migrations", OK, f"at {level.head}")
        context.sessions = sessionmaker(create_engine(url, poolclass=NullPool), expire_on_commit=False)
    else:
        yield Check(
            "migrations", FAIL, f"database at {level.current or 'no revision'}, this version expects {level.head}",
            "exact-sync migrate",
        )  # fmt: skip


def _redis(context: Context) -> Iterator[Check]:
    client: redis.Redis[Any] = redis.Redis.from_url(
        context.settings.redis_url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except Exception as exc:
        client.close()
        yield Check("redis", FAIL, _error(exc), "check REDIS_URL and that Redis runs")
        return
    context.redis = client
    yield Check("redis", OK, _where(context.settings.redis_url))


def _broker(context: Context) -> Iterator[Check]:
    url = str(context.celery.conf.broker_url)
    try:
        broker_reachable(context.celery)
    except Exception as exc:
        yield Check("broker", FAIL, f"{_where(url)}: {_error(exc)}", "check the broker URL and that the broker runs")
        return
    yield Check("broker", OK, _where(url))


def _worker(context: Context) -> Iterator[Check]:
    queue = context.settings.celery_queue
    fix = f"start one: exact-sync worker (it consumes CELERY_QUEUE={queue})"
    try:
        answered = ping_worker(context.celery, None, TIMEOUT_SECONDS / 2)
        consuming = _consumers(context.celery, queue) if answered else []
    except Exception as exc:
        yield Check("worker", FAIL, f"cannot ask the workers: {_error(exc)}", fix)
        return
    if not answered:
        yield Check("worker", FAIL, "no worker answered a ping", fix)
    elif not consuming:
        yield Check("worker", FAIL, f"{', '.join(answered)} answered, but none consumes queue {queue}", fix)
    else:
        yield Check("worker", OK, f"{', '.join(consuming)} consume{'s' if len(consuming) == 1 else ''} {queue}")


def _consumers(app: Celery, queue: str) -> list[str]:
    queues: dict[str, Any] = app.control.inspect(timeout=TIMEOUT_SECONDS / 2).active_queues() or {}
    return sorted(node for node, found in queues.items() if any(q.get("name") == queue for q in found))


def _beat(context: Context) -> Iterator[Check]:
    if context.redis is None:
        yield Check("beat", FAIL, "unknown: Redis is down", "fix Redis first")
    elif leader_held(context.redis, context.settings.redis_key_prefix):
        yield Check("beat", OK, "a beat holds the leader lock")
    else:
        yield Check("beat", FAIL, "no beat holds the leader lock: nothing is scheduled", "start one: exact-sync beat")


def _exact(context: Context) -> Iterator[Check]:
    settings = context.settings
    regions = sorted({report.connection.region for report in context.reports or _reports(context)}) or ["nl"]
    hosts = {settings.base_url_for(region) for region in regions}
    for host in sorted(hosts):
        yield _reach(host, context)


def _reach(host: str, context: Context) -> Check:
    """Exact reachable, and this machine's clock against its Date header (the estimate the workers use)."""
    name = f"exact: {host}"
    sent = context.clock.now()
    try:
        response = httpx.get(f"{host}/api/v1/current/Me", timeout=TIMEOUT_SECONDS, follow_redirects=False)
    except httpx.HTTPError as exc:
        return Check(name, FAIL, f"unreachable: {_error(exc)}", "check the network, proxy and EXACT_BASE_URL")
    bounds = OffsetBounds.from_exchange(sent, context.clock.now(), response.headers.get("Date"))
    if bounds is None:
        return Check(name, WARN, f"answered {response.status_code} without a Date header: clock offset unknown")
    if context.redis is not None:
        with contextlib.suppress(redis.RedisError, OSError):  # the redis check already says so
            ClockOffsets(context.redis, context.settings.redis_key_prefix).save(host, bounds)
    detail = f"reachable ({response.status_code}), {bounds.describe()}"
    problem = offset_problem(bounds, context.settings)
    return Check(name, problem[0], detail, problem[1]) if problem else Check(name, OK, detail)


def _reports(context: Context) -> list[ConnectionReport]:
    if context.sessions is None:
        return []
    if context.reports is None:
        with context.sessions() as session:
            context.reports = connection_reports(session)
    return context.reports


def _connections(context: Context) -> Iterator[Check]:
    if context.sessions is None:
        yield Check("connections", FAIL, "unknown: the database is not ready", "fix Postgres and migrations first")
        return
    reports = _reports(context)
    if not reports:
        yield Check("connections", WARN, "none registered", "exact-sync connect NAME --region nl")
    key = context.settings.token_encryption_key
    store = _store(context.sessions, key.get_secret_value() if key else None)
    gate = RateGate(context.redis, context.settings.redis_key_prefix, context.clock) if context.redis else None
    for report in reports:
        yield from _connection(context, report, store, gate)


def _store(sessions: sessionmaker[Session], key: str | None) -> TokenStore | None:
    try:
        return TokenStore(sessions, TokenCipher(key))
    except ConfigurationError:
        return None  # reported by the configuration check


def _connection(
    context: Context, report: ConnectionReport, store: TokenStore | None, gate: RateGate | None
) -> Iterator[Check]:
    connection, token = report.connection, report.token
    name = f"connection {connection.name}"
    reconnect = (
        f"exact-sync connections invite {connection.name} (send the link to the company's Exact user), or "
        f"exact-sync connect {connection.name} --region {connection.region} (a terminal with a browser)"
    )
    if connection.status == ConnectionStatus.REAUTH_REQUIRED:
        yield Check(name, FAIL, f"needs new consent: {connection.status_reason or 'refresh token refused'}", reconnect)
    elif connection.status == ConnectionStatus.DISABLED:
        yield Check(name, WARN, f"disabled: {connection.status_reason or 'exported or switched off'}", reconnect)
    elif connection.paused:
        yield Check(name, WARN, "paused: no scheduled syncs", f"exact-sync connections set {connection.name} --resume")
    else:
        yield Check(name, OK, f"active, every {connection.sync_interval_minutes} min")
    if token is None:
        yield Check(f"{name}: tokens", FAIL, "no token pair stored", reconnect)
        return
    yield from _tokens(context, name, connection, report, store, reconnect)
    if connection.status != ConnectionStatus.ACTIVE:
        return
    if gate is None:
        yield Check(f"{name}: budgets", WARN, "unknown: Redis is down (budgets live there)", "fix Redis first")
    else:
        yield from _budgets(context, name, connection, gate)


def _tokens(
    context: Context, name: str, connection: Connection, report: ConnectionReport, store: TokenStore | None,
    reconnect: str,
) -> Iterator[Check]:  # fmt: skip
    token = report.token
    assert token is not None
    if store is not None:
        try:
            store.load(connection.id)
        except ConfigurationError as exc:
            yield Check(f"{name}: tokens", FAIL, str(exc), "set TOKEN_ENCRYPTION_KEY to the key that encrypted them")
            return
    age = context.clock.now() - token.refresh_token_issued_at.timestamp()
    left = REFRESH_TOKEN_LIFETIME_SECONDS - age
    detail = f"refresh token {age / DAY:.1f} days old, expires in {left / DAY:.1f} days"
    if token.refresh_failures:
        detail += f"; {token.refresh_failures} failed refresh(es): {token.last_refresh_error or 'unknown error'}"
    keepalive = context.settings.token_keepalive_days * DAY
    if connection.status != ConnectionStatus.ACTIVE:
        yield Check(f"{name}: tokens", OK if left > 0 else WARN, detail)
    elif left <= 0:
        yield Check(f"{name}: tokens", FAIL, detail, reconnect)
    elif age > 2 * keepalive or token.refresh_failures:
        yield Check(f"{name}: tokens", WARN, detail, "check that beat and a worker run (the keep-alive refreshes)")
    else:
        yield Check(f"{name}: tokens", OK, detail)


def _budgets(context: Context, name: str, connection: Connection, gate: RateGate) -> Iterator[Check]:
    assert context.sessions is not None
    with context.sessions() as session:
        divisions = synced_divisions(session, connection)
    now = context.clock.now()
    for division in divisions:
        state = gate.status(str(division))
        check = f"{name}: budget {division}"
        if state.daily_remaining is None:
            yield Check(check, OK, "no calls yet today")
            continue
        left = f"{state.daily_remaining} of {state.daily_limit} daily calls left"
        if state.blocked_until and state.blocked_until > now:
            yield Check(check, WARN, f"{left}; blocked by a 429 for {state.blocked_until - now:.0f} s")
        elif state.daily_low(now, context.settings.daily_budget_low_fraction):
            yield Check(check, WARN, f"{left}: scheduled syncs wait for the daily reset", "another app may share it")
        else:
            yield Check(check, OK, left)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else f"{parts.scheme}://{parts.hostname}"


def _error(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}"[:300]


