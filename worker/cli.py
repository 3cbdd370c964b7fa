"""The `exact-sync` command line. Expected errors end as one line on stderr, exit code 1 (2: bad config)."""

from __future__ import annotations

import atexit
import gc
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from syncs.core.settings import Settings

from worker import cli_lifecycle  # noqa: F401  (registers connections divisions/export/import)
from worker.cli_actions import action_command, proxy_command
from worker.cli_connect import connect, serve
from worker.cli_connections import connections_app
from worker.cli_keys import keys_app
from worker.cli_ops import doctor, health_app
from worker.cli_support import (
    check_broker,
    check_database_url,
    configure_logging,
    console,
    current_settings,
    err_console,
    expected_errors,
    fail,
)
from worker.cli_webhooks import webhooks_app

# Heavy libraries (Celery, SQLAlchemy, Alembic, httpx) are imported inside the commands that use them, so
# `--help` and quick commands start fast (tests/worker/test_cli_start.py, bench/cli_start.py).

# At exit, Python's final garbage collections walk every object the libraries created (about 0.1 s after `status`
# or `connections list`); frozen objects are skipped. Output is flushed and sockets are closed as before: only
# cyclic garbage left at exit goes unfinalized.
atexit.register(gc.freeze)

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: flags read `--wait / --no-wait` (typer's rich panels label every flag `<bool>`).
    rich_markup_mode=None,
    help="Keep Postgres tables in sync with Exact Online.",
)
app.add_typer(connections_app, name="connections")
app.add_typer(keys_app, name="keys")
app.add_typer(health_app, name="health")
app.command("doctor")(doctor)
app.add_typer(webhooks_app, name="webhooks")
app.command("connect")(connect)
app.command("serve")(serve)
app.command("proxy")(proxy_command)
app.command("action")(action_command)

EntityOption = Annotated[
    list[str] | None, typer.Option("--entity", "-e", help="Entity to sync (repeatable); default: all.")
]
FullOption = Annotated[bool, typer.Option("--full", help="Ignore the cursors and fetch everything again.")]
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command()
@expected_errors
def migrate() -> None:
    """Create the database when missing and upgrade it to the newest schema (and, with TOKEN_ENCRYPTION_KEY set,
    bring stored secrets to the current format: see `keys rotate`)."""
    from redis.exceptions import RedisError

    from models.migrate import upgrade_to_head
    from syncs.core.errors import ExactSyncError
    from worker.cli_keys import rotate_with

    settings = current_settings()
    upgrade_to_head(settings.database_url)
    console.print("database is at the newest schema")
    if settings.token_encryption_key is not None and settings.token_encryption_key.get_secret_value():
        try:
            report = rotate_with(settings)
        except (ExactSyncError, RedisError) as exc:  # the schema is done; the secrets can wait for `keys rotate`
            err_console.print(
                f"warning: stored secrets not brought to the current format ({exc}); run "
                "`exact-sync keys rotate` once this is resolved",
                soft_wrap=True,
                markup=False,
            )
            return
        if sum(report.rewritten_connections.values()) or report.rescue_copies_rewritten or report.unreadable:
            for line in report.lines():
                console.print(line, soft_wrap=True, markup=False)


@app.command()
@expected_errors
def sync(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    entity: EntityOption = None,
    full: FullOption = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the worker and print the outcome.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.0, help="Seconds --wait waits at most (default: SYNC_WAIT_TIMEOUT_SECONDS)."),
    ] = None,
) -> None:
    """Queue a sync for the worker."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from syncs.core.db import session_factory
    from syncs.lifecycle.connections import get_connection_by_name
    from worker.app import SYNC_TASK, create_app
    from worker.run_plan import resolve_entities

    settings = current_settings()
    entities = resolve_entities(entity) if entity else None
    with session_factory(settings.database_url)() as session:
        get_connection_by_name(session, name)  # an unknown name fails here, not silently in the worker
    check_broker(settings)
    _warn_if_budget_low(settings, name)
    celery_app = create_app(settings)
    result = celery_app.send_task(
        SYNC_TASK,
        args=[name],
        kwargs={"entities": entities, "full": full, "trigger": "cli-queued"},
        queue=settings.celery_queue,
    )
    console.print(f"queued sync of [bold]{name}[/] as task {result.id} on queue {settings.celery_queue}")
    if not wait:
        return
    limit = settings.sync_wait_timeout_seconds if timeout is None else timeout
    try:
        outcome = result.get(timeout=limit, propagate=False)
    except CeleryTimeout:
        # Stop waiting for the result now: left to AsyncResult.__del__ at interpreter shutdown, the unsubscribe
        # reconnects to Redis while Python tears down and prints a traceback after our one line.
        celery_app.backend.remove_pending_result(result)  # type: ignore[attr-defined]  # Redis: an async backend
        raise fail(
            f"no outcome within {limit:g} s: is a worker running on queue {settings.celery_queue}? The task stays "
            f"queued and may still run (task id {result.id})"
        ) from None
    if result.failed():
        raise fail(f"task failed after its retries: {type(outcome).__name__}: {outcome}")
    _print_outcome(outcome)


@app.command()
@expected_errors
def run(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    entity: EntityOption = None,
    full: FullOption = False,
) -> None:
    """Sync now, in this process (no worker needed), with a progress display."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from worker.runs import execute_sync

    settings = current_settings()
    configure_logging(settings)
    _warn_if_budget_low(settings, name)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err_console, transient=True) as bar:
        tasks: dict[str, Any] = {}
        rows: dict[str, int] = {}

        def progress(stream: str, count: int) -> None:
            rows[stream] = rows.get(stream, 0) + count
            if stream not in tasks:
                tasks[stream] = bar.add_task(stream)
            bar.update(tasks[stream], description=f"{stream}: {rows[stream]} rows fetched")

        outcome = execute_sync(settings, name, entities=entity, full=full, trigger="cli", progress=progress)
    _print_outcome(outcome.as_dict())


def _warn_if_budget_low(settings: Settings, name: str) -> None:
    from worker.budget_view import low_budget_warning

    warning = low_budget_warning(settings, name)
    if warning:
        err_console.print(f"[yellow]{warning}[/]")


def _print_outcome(outcome: Any) -> None:
    from worker.views import outcome_table

    if not isinstance(outcome, dict):
        raise fail(f"unexpected task result {outcome!r}")
    console.print(outcome_table(outcome))
    if outcome.get("status") == "failed":
        raise typer.Exit(1)
    if outcome.get("status") == "skipped":
        console.print("another sync of this connection was running; nothing done")


@app.command()
@expected_errors
def status(name: Annotated[str | None, typer.Argument(help="Only this connection.")] = None) -> None:
    """Connection states, schedules, last runs and cursors."""
    import redis

    from syncs.core.db import session_factory
    from syncs.lifecycle.connections import connection_reports
    from worker.budget_view import budget_status
    from worker.clock_view import clock_status
    from worker.views import status_view
    from worker.webhook_report import subscription_reports
    from worker.webhook_views import auto_subscribe_lines, webhook_table

    with session_factory(current_settings().database_url)() as session:
        reports = connection_reports(session, name)
        console.print(status_view(reports, current_settings()))
        # Short timeouts, as worker.webhook_dispatch's (not imported: it loads Celery).
        client = redis.Redis.from_url(current_settings().redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            webhooks = webhook_table(subscription_reports(session, current_settings(), client, name))
        finally:
            client.close()
        if webhooks is not None:
            console.print(webhooks)
        for line in auto_subscribe_lines(session, name):
            console.print(line)
    console.print(budget_status(current_settings(), [report.connection for report in reports]))
    console.print(clock_status(current_settings()))


def _exec_celery(arguments: Sequence[str]) -> NoReturn:
    command = [sys.executable, "-m", "celery", "-A", "worker.app", *arguments]
    os.execv(sys.executable, command)


@app.command(context_settings=PASS_THROUGH)
@expected_errors
def worker(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option("--loglevel")] = "INFO",
    restart: Annotated[
        bool, typer.Option("--restart/--no-restart", help="Start celery again when it exits with an error.")
    ] = True,
) -> None:
    """Run a Celery worker on our queue and Celery's default one (extra options go to `celery worker`)."""
    from worker.app import worker_queues
    from worker.supervise import supervise

    settings = current_settings()
    check_database_url(settings)
    node = ["-n", settings.worker_node_name]  # what `exact-sync health worker` pings
    arguments = ["worker", "-Q", ",".join(worker_queues(settings)), *node, "--loglevel", loglevel, *ctx.args]
    if not restart:
        _exec_celery(arguments)
    raise typer.Exit(supervise([sys.executable, "-m", "celery", "-A", "worker.app", *arguments]))


@app.command(context_settings=PASS_THROUGH)
@expected_errors
def beat(ctx: typer.Context, loglevel: Annotated[str, typer.Option("--loglevel")] = "INFO") -> None:
    """Run Celery beat with the connection scheduler (extra options go to `celery beat`)."""
    check_database_url(current_settings())  # bad settings: one line here, not a traceback from inside celery
    _exec_celery(["beat", "-S", "worker.scheduler:ConnectionScheduler", "--loglevel", loglevel, *ctx.args])


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 in a container).")] = "127.0.0.1",
    token_file: Annotated[
        str | None, typer.Option(help="Keep issued tokens in this file, so a restart strands no connection.")
    ] = None,
    clock_offset: Annotated[
        float, typer.Option(help="Run the sandbox's clock this many seconds ahead of ours (negative: behind).")
    ] = 0.0,
) -> None:
    """Run the Exact Online sandbox in the foreground (control API under /sandbox/)."""
    from syncs.sandbox.server import serve
    from syncs.sandbox.state import SandboxConfig

    console.print(f"sandbox on http://{host}:{port} (client id sandbox-client, secret sandbox-secret)")
    serve(host, port, SandboxConfig(token_file=token_file, clock_offset_seconds=clock_offset))


@app.command(context_settings=PASS_THROUGH, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """Throughput benchmark against an in-process sandbox (`exact-sync bench --help` lists its options)."""
    try:
        from bench.throughput import main as bench_main
    except ModuleNotFoundError as exc:
        if exc.name != "bench":
            raise
        raise fail("the bench package is not installed; run `python -m bench.throughput` in the source tree") from None
    raise typer.Exit(bench_main(ctx.args))


@app.command()
@expected_errors
def demo(
    sandbox_url: Annotated[
        str | None, typer.Option(help="Use this running sandbox instead of starting one in process.")
    ] = None,
    register_only: Annotated[
        bool, typer.Option("--register-only", help="Only register the demo connection; beat syncs it.")
    ] = False,
) -> None:
    """Migrate, start a sandbox, register a connection named "demo", sync it and count the rows."""
    from worker.demo import register_demo, retire_demo, running_sandbox, sandbox_settings, tokens_from_sandbox

    base = current_settings()
    if sandbox_url:
        settings, ephemeral = sandbox_settings(base, sandbox_url)
        if ephemeral:
            raise fail("--sandbox-url needs TOKEN_ENCRYPTION_KEY: the worker must be able to read the tokens", 2)
        if not register_demo(settings, tokens_from_sandbox(sandbox_url), replace=False):
            console.print("connection [bold]demo[/] is already registered")
        else:
            console.print(f"connection [bold]demo[/] registered against {sandbox_url}")
        if register_only:
            return
        _sync_demo(settings)
        return
    with running_sandbox() as (url, tokens):
        settings, ephemeral = sandbox_settings(base, url)
        console.print(f"sandbox started on {url}")
        if ephemeral:
            console.print(
                "TOKEN_ENCRYPTION_KEY is not set: the demo uses an ephemeral key, so its stored tokens are "
                "unreadable after this command (fine for a demo; set the key for real connections)"
            )
        register_demo(settings, tokens, replace=True)
        try:
            _sync_demo(settings)
        finally:
            retire_demo(settings)


def _sync_demo(settings: Settings) -> None:
    from syncs.core.db import session_factory
    from worker.demo import DEMO_CONNECTION, row_counts
    from worker.runs import execute_sync
    from worker.views import counts_table, outcome_table

    configure_logging(settings)
    from syncs.entities.registry import ENTITIES

    outcome = execute_sync(settings, DEMO_CONNECTION, entities=list(ENTITIES), trigger="demo")
    console.print(outcome_table(outcome.as_dict()))
    with session_factory(settings.database_url)() as session:
        console.print(counts_table(row_counts(session)))
