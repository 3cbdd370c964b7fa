"""Encryption of tokens at rest (Fernet; several comma-separated keys allow key rotation)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from syncs.core.errors import ConfigurationError


class TokenCipher:
    def __init__(self, keys: str | None) -> None:
        if not keys:
            raise ConfigurationError(
                "TOKEN_ENCRYPTION_KEY is not set; generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            )
        try:
            self._fernet = MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])
        except ValueError as exc:
            raise ConfigurationError(f"TOKEN_ENCRYPTION_KEY is not a valid Fernet key: {exc}") from None

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise ConfigurationError(
                "stored tokens cannot be decrypted with TOKEN_ENCRYPTION_KEY (wrong or rotated-out key)"
            ) from None
