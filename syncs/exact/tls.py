"""The one TLS context of a process's HTTP clients."""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (CA bundle, hostname check), built once per process: building one loads
    the CA bundle (about 15 ms), and a run opens an API client and a token client for its plan and for each
    division, each of which would otherwise build its own. An SSLContext may be shared by any number of
    connections and threads."""
    return httpx.create_ssl_context()
