"""The TLS context of a thread's HTTP clients."""

from __future__ import annotations

import ssl
import threading

import httpx

_per_thread = threading.local()


def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (CA bundle, hostname check), built once per thread: building one loads
    the CA bundle (about 15 ms), and a run opens an API client and a token client for its plan and for each
    division, each of which would otherwise build its own.

    Per thread, not per process: httpcore sets the context's ALPN protocols at every new connection, and CPython
    builds a connection's TLS state from the context without holding the GIL, so connections opened at once by
    threads that share a context could race inside OpenSSL. A client keeps the context of the thread that made
    it, so contexts are shared no more widely than httpx shares one within a client."""
    context: ssl.SSLContext | None = getattr(_per_thread, "context", None)
    if context is None:
        context = _per_thread.context = httpx.create_ssl_context()
    return context
