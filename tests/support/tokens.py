"""The token store tests read and write connections' tokens through, with the settings' encryption key."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from syncs.core.crypto import TokenCipher
from syncs.core.settings import Settings
from syncs.tokens.store import TokenStore


def token_store(db: sessionmaker[Session], settings: Settings) -> TokenStore:
    assert settings.token_encryption_key is not None
    return TokenStore(db, TokenCipher(settings.token_encryption_key.get_secret_value()))
