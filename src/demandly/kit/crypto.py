"""Secrets at rest: AES-256-GCM under a keyring with key ids, so keys can rotate.

The master keys come from ``DEMANDLY_SECRET_KEY`` (one key, or ``kid:key,kid:key`` with the
first the active one) or from a key file created with mode 0600 in the data folder at first
run. Each stored value names the key id it was sealed with: ``v1.<kid>.<base64url>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import String, TypeDecorator
from sqlalchemy.engine import Dialect

KEY_FILE_NAME = "secret.key"


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64d(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


@dataclass(frozen=True)
class Keyring:
    """Master keys by id; ``active`` seals, any known id opens."""

    keys: dict[str, bytes]
    active: str

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        keys: dict[str, bytes] = {}
        first = None
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            kid, _, material = part.rpartition(":") if ":" in part else ("k1", "", part)
            keys[kid] = hashlib.sha256(material.encode()).digest()
            first = first or kid
        if not first:
            raise ValueError("DEMANDLY_SECRET_KEY is empty")
        return cls(keys=keys, active=first)

    def _aead(self, kid: str) -> AESGCM:
        return AESGCM(_derive(self.keys[kid], b"demandly/field-encryption/v1"))

    def encrypt(self, plaintext: str, associated_data: bytes = b"") -> str:
        nonce = os.urandom(12)
        sealed = self._aead(self.active).encrypt(nonce, plaintext.encode(), associated_data)
        return f"v1.{self.active}.{_b64e(nonce + sealed)}"

    def decrypt(self, token: str, associated_data: bytes = b"") -> str:
        version, kid, payload = token.split(".", 2)
        if version != "v1" or kid not in self.keys:
            raise ValueError("unknown key id or format")
        raw = _b64d(payload)
        return self._aead(kid).decrypt(raw[:12], raw[12:], associated_data).decode()

    def needs_rotation(self, token: str) -> bool:
        return token.split(".", 2)[1] != self.active

    def mac(self, value: str, purpose: str) -> str:
        """A keyed hash for look-ups of secret values (blind index)."""
        key = _derive(self.keys[self.active], f"demandly/mac/{purpose}".encode())
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def load_master_key(secret_key: str | None, data_dir: Path) -> str:
    """The key spec from the setting, else the key file (created 0600 at first run)."""
    if secret_key:
        return secret_key
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    spec = f"k1:{secrets.token_urlsafe(32)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(spec + "\n")
    return spec


_keyring: Keyring | None = None


def configure_keyring(keyring: Keyring) -> None:
    global _keyring
    _keyring = keyring


def get_keyring() -> Keyring:
    if _keyring is None:
        raise RuntimeError("keyring not configured; call configure_keyring() at start-up")
    return _keyring


def hash_token(token: str) -> str:
    """Tokens we issue carry 256 bits of randomness: a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


class EncryptedString(TypeDecorator[str]):
    """A column whose value is sealed with the keyring before it reaches the database."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else get_keyring().encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else get_keyring().decrypt(value)
