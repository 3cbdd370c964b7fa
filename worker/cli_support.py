"""What every CLI command shares: settings, consoles, and turning expected errors into one clear line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from redis.exceptions import RedisError
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError

from syncs.core.errors import ConfigurationError, ExactSyncError
from syncs.core.settings import Settings, get_settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_USAGE = 2


def current_settings() -> Settings:
    return get_settings()


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
        except OperationalError as exc:
            raise fail(f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}") from None
        except ProgrammingError as exc:
            first = str(exc.orig).strip().splitlines()[0]
            raise fail(f"database error: {first} (did you run `exact-sync migrate`?)") from None
        except RedisError as exc:
            raise fail(f"cannot reach Redis: {exc}") from None

    return wrapper
