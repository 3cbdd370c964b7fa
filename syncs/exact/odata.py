"""Reading Exact Online's OData v2 envelopes (`{"d": ...}`) and its two error envelopes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from syncs.core.errors import MalformedResponseError


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_url: str | None


def decode_json(body: bytes | str, url: str) -> Any:
    """The decoded body, or MalformedResponseError naming the URL (Exact answers XML without Accept: json)."""
    try:
        return orjson.loads(body)
    except (ValueError, UnicodeDecodeError):
        preview = body[:80].decode(errors="replace") if isinstance(body, bytes) else body[:80]
        raise MalformedResponseError(f"response from {url} is not JSON (starts with {preview!r})") from None


def parse_page(body: bytes | str, url: str) -> Page:
    return page_from_json(decode_json(body, url), url)


def page_from_json(document: Any, url: str) -> Page:
    """Accepts {"d":{"results":[...],"__next":".."}}, {"d":[...]} and {"d":{one record}}."""
    if not isinstance(document, dict) or "d" not in document:
        raise MalformedResponseError(f"response from {url} has no OData 'd' envelope")
    envelope = document["d"]
    if isinstance(envelope, list):
        return Page(_rows(envelope, url), None)
    if not isinstance(envelope, dict):
        raise MalformedResponseError(f"response from {url}: 'd' is a {type(envelope).__name__}, not an object")
    if "results" not in envelope:
        return Page([envelope], None)
    results = envelope["results"]
    if not isinstance(results, list):
        raise MalformedResponseError(f"response from {url}: 'd.results' is not a list")
    next_url = envelope.get("__next")
    if next_url is not None and (not isinstance(next_url, str) or not next_url.strip()):
        raise MalformedResponseError(f"response from {url}: 'd.__next' is not a URL: {next_url!r}")
    return Page(_rows(results, url), next_url)


def _rows(items: list[Any], url: str) -> list[dict[str, Any]]:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedResponseError(f"response from {url}: row {index} is a {type(item).__name__}, not an object")
    return items


def error_message(body: bytes | str) -> str | None:
    """The text of {"error":{"code","message":{"lang","value"}}} or OAuth's {"error","error_description"}."""
    try:
        document = orjson.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, dict) and isinstance(message.get("value"), str):
            return str(message["value"])
        if isinstance(message, str):
            return message
        code = error.get("code")
        return str(code) if code else None
    if isinstance(error, str):
        description = document.get("error_description")
        return f"{error}: {description}" if isinstance(description, str) and description else error
    return None


def oauth_error(body: bytes | str) -> tuple[str | None, str | None]:
    """(error, error_description) of an OAuth error body, or (None, None)."""
    try:
        document = orjson.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    error, description = document.get("error"), document.get("error_description")
    return (
        error if isinstance(error, str) else None,
        description if isinstance(description, str) else None,
    )
