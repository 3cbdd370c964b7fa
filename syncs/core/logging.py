"""Structured logging (structlog) with secrets redacted from every event, however deeply nested."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from syncs.core.settings import Settings

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "token",
        "authorization",
        "code",
        "client_secret",
        "secret",
        "password",
        "token_encryption_key",
    }
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',]+")
_FORM_SECRET = re.compile(r"(?i)\b(access_token|refresh_token|client_secret|code)=[^&\s\"']+")
# JSON (or a Python repr of it) inside a string, also escaped (`\"code\":`) or cut short (`{"access_token":"abc`):
# the value runs to the next quote or backslash, or to the end of the string.
_JSON_SECRET = re.compile(
    r"""(?i)(\\?["'](?:access_token|refresh_token|client_secret|code|token|password|secret)\\?["']\s*:\s*\\?["'])"""
    r"""[^"'\\]+"""
)


def _redact(value: Any) -> Any:
    if isinstance(value, MutableMapping):
        return {k: REDACTED if str(k).lower() in SECRET_KEYS else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    if isinstance(value, str):
        value = _JSON_SECRET.sub(rf"\1{REDACTED}", value)
        return _FORM_SECRET.sub(rf"\1={REDACTED}", _BEARER.sub(rf"\1 {REDACTED}", value))
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace values of secret-looking keys, bearer headers, token form fields and JSON-shaped secrets inside
    strings with a marker."""
    return {key: REDACTED if key.lower() in SECRET_KEYS else _redact(value) for key, value in event_dict.items()}


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
        structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer(colors=False),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=stream or sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # httpx logs every request URL at INFO; URLs carry no tokens, but keep the noise down.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(level, logging.WARNING))
