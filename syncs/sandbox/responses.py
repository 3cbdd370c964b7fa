"""Exact's response shapes: the OData error envelope, the flat OAuth error, and plain JSON bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def exact_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    envelope = {"error": {"code": "", "message": {"lang": "", "value": message}}}
    return json_response(envelope, status, headers)


def oauth_error(status: int, error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, status)


@dataclass(frozen=True)
class Answer:
    """A handler's answer with a status other than 200 (201 for a create, 204 with no body)."""

    body: Any
    status: int


class ApiError(Exception):
    """Raised inside an API handler; rendered in Exact's envelope (rate headers still added)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
