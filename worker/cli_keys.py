"""`exact-sync keys rotate`: re-encrypt every stored secret under the first key of TOKEN_ENCRYPTION_KEY."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from worker.cli_support import console, current_settings, expected_errors, fail

if TYPE_CHECKING:
    from syncs.core.settings import Settings
    from syncs.lifecycle.keys import RotationReport

# Redis, the database and encryption are imported inside the commands (fast start, see worker.cli).

keys_app = typer.Typer(no_args_is_help=True, help="Manage TOKEN_ENCRYPTION_KEY (key rotation).")


def rotate_with(settings: Settings) -> RotationReport:
    import redis

    from syncs.core.crypto import TokenCipher
    from syncs.core.db import session_factory
    from syncs.lifecycle.keys import rotate_keys

    key = settings.token_encryption_key
    cipher = TokenCipher(key.get_secret_value() if key else None)
    redis_client: redis.Redis[Any] = redis.Redis.from_url(settings.redis_url)
    try:
        return rotate_keys(session_factory(settings.database_url), redis_client, cipher, settings.redis_key_prefix)
    finally:
        redis_client.close()


@keys_app.command("rotate")
@expected_errors
def rotate() -> None:
    """Re-encrypt stored tokens (every connection, whatever its state) and Redis rescue copies under the first
    key, so older keys can be removed from TOKEN_ENCRYPTION_KEY."""
    report = rotate_with(current_settings())
    for line in report.lines():
        console.print(line, soft_wrap=True, markup=False)
    if report.unreadable:
        raise fail("some secrets could not be decrypted with any configured key; keep the old keys until resolved")
    console.print("every stored secret is under the first key: older keys can be removed", markup=False)
