"""What every CLI command shares: settings, consoles, and turning expected errors into one clear line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
import typer
from kombu.exceptions import OperationalError as BrokerError
from pydantic import ValidationError
from redis.exceptions import RedisError
from rich.console import Console
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from syncs.core.errors import ConfigurationError, ExactSyncError
from syncs.core.settings import Settings, get_settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_USAGE = 2


BROKER_CHECK_TIMEOUT_SECONDS = 3.0


def current_settings() -> Settings:
    """The settings from the environment; a value that does not parse is one line, not a traceback."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid configuration: {problems}") from None


def check_broker(settings: Settings) -> None:
    """Fail in seconds, with one line, when Redis (the broker) does not answer, rather than after Celery's retries."""
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
        except ArgumentError as exc:
            raise fail(f"DATABASE_URL is not a database URL ({exc})", EXIT_USAGE) from None
        except OperationalError as exc:
            raise fail(f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}") from None
        except ProgrammingError as exc:
            first = str(exc.orig).strip().splitlines()[0]
            raise fail(f"database error: {first} (did you run `exact-sync migrate`?)") from None
        except (RedisError, BrokerError) as exc:
            raise fail(f"cannot reach Redis at REDIS_URL: {exc}") from None

    return wrapper
