"""`exact-sync health worker|beat|web` (probes for compose and Kubernetes: exit 0 healthy, 1 not) and `doctor`."""

from __future__ import annotations

import json
import socket
import time
from typing import Annotated

import typer
from rich.markup import escape

from worker.cli_support import console, current_settings, expected_errors, fail

# httpx, Redis, Celery and the health helpers are imported inside the commands (fast start, see worker.cli).

health_app = typer.Typer(no_args_is_help=True, help="Health probes for orchestrators (exit code 0: healthy).")


@health_app.command("worker")
@expected_errors
def worker_health(
    node: Annotated[
        str | None, typer.Option(help="Worker node name to ping (default: WORKER_NODE_NAME, celery@<this host>).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 5.0,
) -> None:
    """Healthy when this host's Celery worker answers a ping through the broker."""
    from worker.app import create_app
    from worker.health import ping_worker, worker_node

    settings = current_settings()
    target = worker_node(node or settings.worker_node_name)
    try:
        answered = ping_worker(create_app(settings), target, timeout)
    except Exception as exc:
        raise fail(f"worker {target}: broker unreachable ({type(exc).__name__}: {exc})") from None
    if target not in answered:
        raise fail(f"worker {target} did not answer a ping within {timeout:g} s")
    console.print(f"worker {target} answered")


@health_app.command("beat")
@expected_errors
def beat_health(
    host: Annotated[str | None, typer.Option(help="Hostname of the beat (default: this one).")] = None,
    max_age: Annotated[
        float | None, typer.Option(help="Oldest acceptable heartbeat, seconds (default: the leader lock's TTL).")
    ] = None,
) -> None:
    """Healthy when this host's beat ticked recently (leader or standby)."""
    import redis

    from worker.health import beat_lock_ttl, read_heartbeat

    settings = current_settings()
    limit = max_age if max_age is not None else beat_lock_ttl(settings)
    host = host or socket.gethostname()
    client: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        heartbeat = read_heartbeat(client, settings.redis_key_prefix, host)
    except Exception as exc:
        raise fail(f"beat on {host}: Redis unreachable ({type(exc).__name__}: {exc})") from None
    finally:
        client.close()
    if heartbeat is None:
        raise fail(f"beat on {host} has not ticked recently (no heartbeat in Redis)")
    age = time.time() - heartbeat.at
    if age > limit:
        raise fail(f"beat on {host} last ticked {age:.0f} s ago (more than {limit:g} s)")
    role = "leader" if heartbeat.leader else "standby (another beat leads)"
    console.print(f"beat on {host} ticking as {role}")


@health_app.command("web")
def web_health(
    url: Annotated[str, typer.Option(help="Readiness URL of `serve`.")] = "http://127.0.0.1:8000/ready",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 5.0,
) -> None:
    """Healthy when `serve` answers its readiness check with 200."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise fail(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise fail(f"{url} answered {response.status_code}: {response.text[:300]}")
    console.print(f"{url} ready")


LEVEL_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}


@expected_errors
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check configuration, Postgres, migrations, Redis, broker, worker, beat, Exact and every connection."""
    from worker.doctor import FAIL, run_checks

    checks = run_checks(current_settings())
    failed = any(check.level == FAIL for check in checks)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [check.as_dict() for check in checks]}, indent=2))
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            style = LEVEL_STYLE[check.level]
            line = f"[{style}]{check.level:<4}[/] {check.name:<{width}}  {escape(check.detail)}"
            console.print(line + (f"\n     [dim]-> {escape(check.fix)}[/]" if check.fix else ""), soft_wrap=True)
    if failed:
        raise typer.Exit(1)
