"""The benchmark's sandbox in a process of its own, as Exact is a remote server.

In the loader's interpreter the sandbox would compete with it for the GIL: serving the next page would stall
mapping the current one, so no loader could overlap fetching with writing, and the loader's own memory would
include the data set. Every method of the benchmark reads from the same process, so the comparison stays fair.
The parent drives it through the sandbox's control API (tokens, latency).
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

import httpx

from syncs.sandbox.server import SandboxServer
from syncs.sandbox.state import SandboxConfig, SandboxState

Seed = Callable[[SandboxState], None]  # fills the state before the server starts (runs in the child)
START_TIMEOUT = 600.0  # seconds: generating a data set of a million records takes a few minutes


def _serve(config: SandboxConfig, seed: Seed, pipe: Connection) -> None:
    try:
        state = SandboxState(config)
        seed(state)
        server = SandboxServer(state)
        server.start()
    except BaseException as exc:
        pipe.send(f"error: {exc!r}")
        raise
    pipe.send(server.base_url)
    with contextlib.suppress(EOFError):
        pipe.recv()  # the parent sends nothing: its end closing says stop
    server.stop()


class SandboxProcess:
    """`with SandboxProcess(config, seed) as sandbox:` the sandbox serving on `sandbox.base_url`."""

    def __init__(self, config: SandboxConfig, seed: Seed) -> None:
        self.config = config
        self._seed = seed
        self._pipe: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.base_url = ""

    def __enter__(self) -> SandboxProcess:
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited threads or pools
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(self.config, self._seed, child), name="bench-sandbox")
        self._process.start()
        child.close()
        self._pipe = parent
        if not parent.poll(START_TIMEOUT):
            self.__exit__(None, None, None)
            raise RuntimeError("the sandbox process did not start")
        try:
            answer = parent.recv()
        except EOFError:
            answer = "it ended before serving (see its traceback above)"
        if not str(answer).startswith("http"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the sandbox process failed: {answer}")
        self.base_url = str(answer)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pipe is not None:
            self._pipe.close()
        if self._process is not None:
            self._process.join(30)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(10)

    def _control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.base_url}/sandbox/{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh token pair, as `SandboxState.issue_tokens`."""
        tokens: dict[str, Any] = self._control("tokens")
        return tokens

    def set_latency(self, seconds: float) -> None:
        """Seconds the sandbox waits before each API answer from now on."""
        self._control("config", {"latency": seconds})
