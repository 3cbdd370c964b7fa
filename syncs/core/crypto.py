"""Encryption of secrets at rest, bound to where they belong, and keyed hashes.

TOKEN_ENCRYPTION_KEY holds one or more comma-separated Fernet keys; the first encrypts, all decrypt, so a key
can be rotated: add the new key in front, run `exact-sync keys rotate` (re-encrypts every stored secret under the
first key), then drop the old one.

Each ciphertext is AES-256-GCM under a key derived (HKDF-SHA256) from a configured key, with the place it
belongs to (`bound_to`, e.g. "connection 7 refresh_token") as associated data: a ciphertext copied into another
row or another connection's Redis key fails to decrypt instead of handing one company's token to another.
Format: 0x02, 12-byte nonce, ciphertext with tag. Ciphertexts written before this format (plain Fernet, unbound)
still decrypt, and `keys rotate` (also run by `exact-sync migrate`) rewrites them bound.

A keyed hash (HMAC-SHA256 under a key derived with HKDF from a TOKEN_ENCRYPTION_KEY key and a purpose) identifies a
secret without storing it: someone who reads the database cannot test guesses without the key. Lookups try every
configured key (`keyed_hashes`), so a rotation does not orphan what was hashed under an older key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syncs.core.errors import ConfigurationError

BOUND = b"\x02"
NONCE_BYTES = 12
LEGACY = -1  # `Opened.key_index` of an unbound Fernet ciphertext


@dataclass(frozen=True)
class Opened:
    plaintext: str
    key_index: int  # which configured key opened it (0: the first), or LEGACY

    @property
    def current(self) -> bool:
        """Already bound and under the first key: nothing for a rotation to do."""
        return self.key_index == 0


def bound_to(connection_id: int, what: str) -> str:
    """The associated data of a connection's secret: `what` is access_token, refresh_token or rescue."""
    return f"connection {connection_id} {what}"


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
        self._aeads = [AESGCM(_derive(key, "secret at rest")) for key in self._hash_keys]

    def keyed_hash(self, value: str, purpose: str) -> bytes:
        """HMAC-SHA256 of `value` under the first key, derived for `purpose` (what new rows store)."""
        return _keyed_hash(self._hash_keys[0], value, purpose)

    def keyed_hashes(self, value: str, purpose: str) -> list[bytes]:
        """`value`'s keyed hash under every configured key (for lookups that survive a rotation)."""
        return [_keyed_hash(key, value, purpose) for key in self._hash_keys]

    def encrypt(self, plaintext: str, *, bound_to: str) -> bytes:
        """`plaintext` under the first key, decryptable only with the same `bound_to`."""
        nonce = os.urandom(NONCE_BYTES)
        return BOUND + nonce + self._aeads[0].encrypt(nonce, plaintext.encode(), bound_to.encode())

    def decrypt(self, ciphertext: bytes, *, bound_to: str) -> str:
        return self.open(ciphertext, bound_to=bound_to).plaintext

    def open(self, ciphertext: bytes, *, bound_to: str) -> Opened:
        """The plaintext and which key opened it; ConfigurationError for a wrong key or a misplaced ciphertext."""
        if ciphertext[:1] == BOUND:
            nonce, sealed = ciphertext[1 : 1 + NONCE_BYTES], ciphertext[1 + NONCE_BYTES :]
            for index, aead in enumerate(self._aeads):
                try:
                    return Opened(aead.decrypt(nonce, sealed, bound_to.encode()).decode(), index)
                except InvalidTag:
                    continue
            raise ConfigurationError(
                f"a stored secret ({bound_to}) cannot be decrypted with TOKEN_ENCRYPTION_KEY: a wrong or "
                "rotated-out key, or a ciphertext that was moved from another row"
            )
        try:
            return Opened(self._fernet.decrypt(ciphertext).decode(), LEGACY)
        except InvalidToken:
            raise ConfigurationError(
                f"a stored secret ({bound_to}) cannot be decrypted with TOKEN_ENCRYPTION_KEY (wrong or rotated-out key)"
            ) from None


def _derive(key: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"exact-sync {purpose}".encode()).derive(key)


def _keyed_hash(key: bytes, value: str, purpose: str) -> bytes:
    return hmac.new(_derive(key, purpose), value.encode(), hashlib.sha256).digest()
