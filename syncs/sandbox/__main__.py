"""`python -m syncs.sandbox --port 8765`: run the sandbox in the foreground."""

from __future__ import annotations

import argparse

from syncs.sandbox.server import serve
from syncs.sandbox.state import SandboxConfig


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m syncs.sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--no-limits", action="store_true", help="turn the rate limits off")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument(
        "--clock-offset", type=float, default=0.0, help="run the sandbox's clock this many seconds ahead (or behind)"
    )
    args = parser.parse_args()
    config = SandboxConfig(page_size=args.page_size, clock_offset_seconds=args.clock_offset)
    if args.no_limits:
        config.minutely_limit = config.daily_limit = None
    serve(args.host, args.port, config)


if __name__ == "__main__":
    run()
