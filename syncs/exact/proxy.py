"""The proxy: any call to Exact's REST API through a connection's client (auth, budgets, in-flight slots).

A PATH is relative to `/api/v1/{division}/` (`crm/Accounts`, `sync/CRM/Accounts?...`), or `current/...` (no
division), or a full URL that must be on Exact's host (a `d.__next` handed back); anything else is refused
before a call. With `all_pages` a GET follows `d.__next` and answers one `{"d": {"results": [...]}}`.
Exact's own error body is what a refused call raises (`ExactRequestError.body`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from syncs.core.errors import ConfigurationError, ForeignHostError
from syncs.exact.client import ExactClient
from syncs.exact.odata import decode_json

METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})


@dataclass(frozen=True)
class ProxyResult:
    status: int
    body: Any  # the decoded JSON answer; None for an empty one (204)
    pages: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "pages": self.pages}


def split_path(path: str) -> tuple[str, dict[str, str]]:
    """`crm/Accounts?$top=1` -> ("crm/Accounts", {"$top": "1"}); refuses `..` and other hosts' URLs."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        return path, {}  # a full URL: the client checks its host
    clean = parts.path.lstrip("/")
    if clean.startswith("api/v1/"):
        clean = clean[len("api/v1/") :]
    if not clean or any(segment in ("..", ".") for segment in clean.split("/")):
        raise ForeignHostError(f"proxy path {path!r} must name an API resource below /api/v1/")
    return clean, dict(parse_qsl(parts.query, keep_blank_values=True))


def proxy_call(
    client: ExactClient,
    method: str,
    path: str,
    *,
    division: int | None,
    data: Any = None,
    all_pages: bool = False,
    params: dict[str, str] | None = None,
) -> ProxyResult:
    method = method.upper()
    if method not in METHODS:
        raise ConfigurationError(f"method {method} is not one of {', '.join(sorted(METHODS))}")
    if data is not None and method in ("GET", "DELETE"):
        raise ConfigurationError(f"{method} takes no --data")
    if all_pages and method != "GET":
        raise ConfigurationError("--all-pages only pages a GET")
    resource, query = split_path(path)
    query.update(params or {})
    full_url = "://" in resource
    on_division = None if resource.startswith("current/") else division
    if all_pages:
        if on_division is None:
            raise ConfigurationError("--all-pages needs a division (current/... answers one page)")
        rows: list[dict[str, Any]] = []
        pages = 0
        source = (
            client.pages(on_division, resource, {}, resume_url=resource)
            if full_url
            else client.pages(on_division, resource, query)
        )
        for page in source:
            rows.extend(page.rows)
            pages += 1
        return ProxyResult(200, {"d": {"results": rows}}, pages)
    response = client.request(method, resource, division=on_division, params=query or None, body=data)
    body = decode_json(response.content, str(response.request.url)) if response.content.strip() else None
    return ProxyResult(response.status_code, body)
