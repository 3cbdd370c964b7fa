"""A module's structlog logger that imports structlog at its first event.

The rate gates, the clock offsets and the polling plans log only when something goes wrong, and `exact-sync status`
reads them all: with this logger it starts without structlog (tests/worker/test_cli_start.py).
"""

from __future__ import annotations

from typing import Any


class LazyLogger:
    """Stands for `structlog.get_logger(name)`: the same proxy, made at the first event."""

    _logger: Any = None

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)
