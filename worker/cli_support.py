"""What every CLI command shares: settings, consoles, and turning expected errors into one clear line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer
from rich.console import Console

from syncs.core.errors import ConfigurationError, ExactSyncError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from syncs.core.settings import Settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_USAGE = 2


BROKER_CHECK_TIMEOUT_SECONDS = 3.0


def current_settings() -> Settings:
    """The settings from the environment; a value that does not parse is one line, not a traceback."""
    # pydantic (and below, redis) are imported by the commands that need them: the CLI starts without them.
    from pydantic import ValidationError

    from syncs.core.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        raise ConfigurationError(_invalid_configuration(exc)) from None


def _invalid_configuration(exc: ValidationError) -> str:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
    return f"invalid configuration: {problems}"


def check_database_url(settings: Settings) -> None:
    """Fail at once, with one line, on a DATABASE_URL SQLAlchemy cannot parse (long-running commands would only
    fail at their first query, in another process)."""
    from sqlalchemy.engine import make_url

    make_url(settings.database_url)


def configure_logging(settings: Settings) -> None:
    """structlog set up for a command that logs (imported here: the CLI starts without structlog)."""
    from syncs.core.logging import configure_logging as configure

    configure(settings)


def check_broker(settings: Settings) -> None:
    """Fail in seconds, with one line, when Redis (the broker) does not answer, rather than after Celery's retries."""
    import redis

    client: redis.Redis[bytes] = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=BROKER_CHECK_TIMEOUT_SECONDS,
        socket_timeout=BROKER_CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print one line to stderr; `raise fail(...)` ends the command with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def expected_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Expected failures end as one line and exit code 1 (2: bad configuration); bugs keep their traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConfigurationError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except ExactSyncError as exc:
            raise fail(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            failure = _service_error(exc)
            if failure is None:
                raise
            raise fail(*failure) from None

    return wrapper


def _service_error(exc: Exception) -> tuple[str, int] | None:
    """A configuration, database or Redis failure as (one line, exit code). The libraries are looked up only if
    loaded (a command that never imported SQLAlchemy cannot have raised its errors), so starting the CLI does not
    import them. Settings that do not parse can surface on import: `worker.app` reads them to build the Celery app."""
    pydantic_errors = sys.modules.get("pydantic_core")
    if pydantic_errors is not None and isinstance(exc, pydantic_errors.ValidationError):
        return _invalid_configuration(exc), EXIT_USAGE
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_errors is not None:
        if isinstance(exc, sqlalchemy_errors.ArgumentError):
            return f"DATABASE_URL is not a database URL ({exc})", EXIT_USAGE
        if isinstance(exc, sqlalchemy_errors.OperationalError):
            return f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}", EXIT_FAILURE
        if isinstance(exc, sqlalchemy_errors.ProgrammingError):
            first = str(exc.orig).strip().splitlines()[0]
            return f"database error: {first} (did you run `exact-sync migrate`?)", EXIT_FAILURE
    broker_errors = tuple(
        getattr(module, name)
        for module, name in ((sys.modules.get("redis.exceptions"), "RedisError"),
                             (sys.modules.get("kombu.exceptions"), "OperationalError"))
        if module is not None
    )  # fmt: skip
    if broker_errors and isinstance(exc, broker_errors):
        return f"cannot reach Redis at REDIS_URL: {exc}", EXIT_FAILURE
    return None
