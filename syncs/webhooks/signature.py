"""Verifying an Exact Online webhook delivery: `{"Content": {...}, "HashCode": "..."}`.

Exact signs the `Content` object exactly as it sends it: HashCode = uppercase hex HMAC-SHA256 of the raw bytes
of that JSON value, keyed with the app's webhook secret (picqer Webhook/Authenticatable.php). Re-serialising
the parsed object would change spacing, key order or escapes, so the value's raw span is cut out of the body
by walking the top-level object with the JSON scanner, and the MAC is computed over those bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class SignatureError(Exception):
    """The delivery is not signed by Exact with our secret (or not a delivery at all). Never carries the body."""


@dataclass(frozen=True)
class Delivery:
    content: dict[str, Any]
    raw_content: bytes  # the signed bytes, also the event's identity (a replay carries the same ones)


def sign(raw_content: bytes, secret: str) -> str:
    """Exact's HashCode for `raw_content` (the sandbox signs with it too)."""
    return hmac.new(secret.encode(), raw_content, hashlib.sha256).hexdigest().upper()


def verify(body: bytes, secret: str) -> Delivery:
    """The delivery's Content when HashCode matches (compared in constant time); SignatureError otherwise."""
    try:
        text = body.decode("utf-8")
        members = _top_level_members(text)
    except (UnicodeDecodeError, ValueError):
        raise SignatureError("not a JSON object") from None
    if "Content" not in members or "HashCode" not in members:
        raise SignatureError("Content or HashCode missing")
    (content_start, content_end), hash_code = members["Content"], _value(text, members["HashCode"])
    raw = text[content_start:content_end].encode("utf-8")
    if not isinstance(hash_code, str) or not hash_code.isascii():
        raise SignatureError("HashCode is not a hex string")
    if not hmac.compare_digest(sign(raw, secret).encode(), hash_code.upper().encode()):
        raise SignatureError("HashCode does not match")
    content = _value(text, members["Content"])
    if not isinstance(content, dict):
        raise SignatureError("Content is not an object")
    return Delivery(content, raw)


def _value(text: str, span: tuple[int, int]) -> Any:
    return json.loads(text[span[0] : span[1]])


def _top_level_members(text: str) -> dict[str, tuple[int, int]]:
    """Each top-level key of a JSON object -> the (start, end) of its raw value in `text`. ValueError if the
    text is not exactly one JSON object (a repeated key keeps its last value, as json.loads does)."""
    spans: dict[str, tuple[int, int]] = {}
    i = _skip(text, 0)
    if not text.startswith("{", i):
        raise ValueError("not an object")
    i = _skip(text, i + 1)
    closing = text.startswith("}", i)
    while not closing:
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if not isinstance(key, str) or not text.startswith(":", i):
            raise ValueError("'\"key\":' expected")
        start = _skip(text, i + 1)
        _, end = _DECODER.raw_decode(text, start)
        spans[key] = (start, end)
        i = _skip(text, end)
        closing = text.startswith("}", i)
        if not closing and not text.startswith(",", i):
            raise ValueError("',' or '}' expected")
        i = _skip(text, i + 1) if not closing else i
    if _skip(text, i + 1) != len(text):
        raise ValueError("text after the object")
    return spans


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i
