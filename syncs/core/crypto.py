"""Encryption of tokens at rest (Fernet; several comma-separated keys allow key rotation), and keyed hashes.

A keyed hash (HMAC-SHA256 under a key derived with HKDF from a TOKEN_ENCRYPTION_KEY key and a purpose) identifies a
secret without storing it: someone who reads the database cannot test guesses without the key. Lookups try every
configured key (`keyed_hashes`), so a rotation does not orphan what was hashed under an older key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syncs.core.errors import ConfigurationError


class TokenCipher:
    def __init__(self, keys: str | None) -> None:
        if not keys:
            raise ConfigurationError(
                "TOKEN_ENCRYPTION_KEY is not set; generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            )
        raw = [key.strip() for key in keys.split(",") if key.strip()]
        try:
            self._fernet = MultiFernet([Fernet(key) for key in raw])
        except ValueError as exc:
            raise ConfigurationError(f"TOKEN_ENCRYPTION_KEY is not a valid Fernet key: {exc}") from None
        self._hash_keys = [base64.urlsafe_b64decode(key) for key in raw]

    def keyed_hash(self, value: str, purpose: str) -> bytes:
        """HMAC-SHA256 of `value` under the first key, derived for `purpose` (what new rows store)."""
        return _keyed_hash(self._hash_keys[0], value, purpose)

    def keyed_hashes(self, value: str, purpose: str) -> list[bytes]:
        """`value`'s keyed hash under every configured key (for lookups that survive a rotation)."""
        return [_keyed_hash(key, value, purpose) for key in self._hash_keys]

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise ConfigurationError(
                "stored tokens cannot be decrypted with TOKEN_ENCRYPTION_KEY (wrong or rotated-out key)"
            ) from None


def _keyed_hash(key: bytes, value: str, purpose: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"exact-sync {purpose}".encode()).derive(key)
    return hmac.new(derived, value.encode(), hashlib.sha256).digest()
