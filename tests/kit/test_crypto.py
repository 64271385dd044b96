from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import text

from demandly.kit.context import Scope
from demandly.kit.crypto import KEY_FILE_NAME, Keyring, hash_token, load_master_key
from demandly.kit.db import Database
from demandly.tenancy.models import User
from tests.factories import make_user


def test_encrypt_round_trip_and_fresh_nonce() -> None:
    ring = Keyring.parse("k1:alpha")
    first, second = ring.encrypt("sk-secret"), ring.encrypt("sk-secret")
    assert first != second and "sk-secret" not in first
    assert ring.decrypt(first) == "sk-secret"


def test_rotation_reads_old_values_and_seals_with_the_new_key() -> None:
    old = Keyring.parse("k1:alpha")
    sealed = old.encrypt("token")
    rotated = Keyring.parse("k2:beta,k1:alpha")
    assert rotated.decrypt(sealed) == "token"
    assert rotated.needs_rotation(sealed)
    assert rotated.encrypt("token").startswith("v1.k2.")


def test_tampered_ciphertext_is_refused() -> None:
    ring = Keyring.parse("k1:alpha")
    sealed = ring.encrypt("token")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises((InvalidTag, ValueError)):
        ring.decrypt(flipped)


def test_unknown_key_id_is_refused() -> None:
    sealed = Keyring.parse("k9:gamma").encrypt("x")
    with pytest.raises(ValueError):
        Keyring.parse("k1:alpha").decrypt(sealed)


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    spec = load_master_key(None, tmp_path)
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_master_key(None, tmp_path) == spec
    assert load_master_key("k1:from-env", tmp_path) == "k1:from-env"


def test_token_hash_is_stable_and_not_the_token() -> None:
    assert hash_token("abc") == hash_token("abc") != "abc"


async def test_encrypted_column_is_ciphertext_in_the_database(db: Database) -> None:
    user = await make_user(db)
    async with db.session(Scope.for_system()) as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.totp_secret = "JBSWY3DPEHPK3PXP"
        await session.commit()
    async with db.session(Scope.for_system()) as session:
        raw = (
            await session.execute(
                text("SELECT totp_secret FROM users WHERE id = :id"), {"id": user.id}
            )
        ).scalar_one()
        assert raw.startswith("v1.") and "JBSWY3DPEHPK3PXP" not in raw
        loaded = await session.get(User, user.id)
        assert loaded is not None and loaded.totp_secret == "JBSWY3DPEHPK3PXP"
