"""An Exact Online double: a real HTTP server with Exact's token, paging, sync and rate-limit behaviour."""

from syncs.sandbox.server import SandboxServer, main, serve
from syncs.sandbox.state import Counters, SandboxConfig, SandboxState

__all__ = ["Counters", "SandboxConfig", "SandboxServer", "SandboxState", "main", "serve"]
