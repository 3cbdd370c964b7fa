"""Run the sandbox: in a background thread for tests and the demo, or in the foreground for the CLI."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from syncs.core.clock import SYSTEM_CLOCK
from syncs.sandbox.app import build_app
from syncs.sandbox.state import SandboxConfig, SandboxState


class SandboxServer:
    """uvicorn on a daemon thread. Port 0 picks a free port; `base_url` tells which one."""

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on such sockets, and without it every
        # keep-alive response stalls ~40 ms (Nagle against delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            date_header=False,  # the app sets Date from the sandbox's clock
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8765, config: SandboxConfig | None = None) -> None:
    """Run in the foreground until interrupted (what `exact-sync sandbox --port P` calls)."""
    state = SandboxState(config or SandboxConfig(), clock=SYSTEM_CLOCK)
    uvicorn.run(build_app(state), host=host, port=port, log_level="info", lifespan="off", date_header=False)


def main(port: int = 8765, host: str = "127.0.0.1") -> None:
    serve(host, port)
