"""AES-GCM sealing of restricted detail: round trip, binding, tampering, rotation, key parsing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from services.intake import crypto
from services.intake.crypto import (
    DecryptionError,
    KeyConfigError,
    KeyRing,
    generate_key,
    parse_keys,
)

K1 = b"1" * 32
K2 = b"2" * 32
AAD = b"aviso-intake/notice/n-1/v1"


def test_round_trip_names_the_key_and_hides_the_plaintext() -> None:
    ring = KeyRing(keys={"k1": K1}, active_key_id="k1")
    sealed = ring.encrypt(b"Esteban Quiroga", aad=AAD)
    assert sealed.startswith("aesgcm1:k1:")
    assert b"Esteban" not in sealed.encode()
    assert ring.decrypt(sealed, aad=AAD) == b"Esteban Quiroga"
    assert KeyRing.key_id_of(sealed) == "k1"
    # A fresh nonce each time: equal plaintexts do not look equal at rest.
    assert ring.encrypt(b"Esteban Quiroga", aad=AAD) != sealed


def test_a_value_moved_to_another_row_does_not_open() -> None:
    ring = KeyRing(keys={"k1": K1}, active_key_id="k1")
    sealed = ring.encrypt(b"detail", aad=AAD)
    with pytest.raises(DecryptionError):
        ring.decrypt(sealed, aad=b"aviso-intake/notice/n-2/v1")


def test_tampering_is_detected() -> None:
    ring = KeyRing(keys={"k1": K1}, active_key_id="k1")
    sealed = ring.encrypt(b"detail", aad=AAD)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for broken in (flipped, "aesgcm1:k1:", "plaintext", "aesgcm1:k1:!!!"):
        with pytest.raises(DecryptionError):
            ring.decrypt(broken, aad=AAD)


def test_rotation_opens_old_values_and_seals_new_ones_with_the_new_key() -> None:
    old = KeyRing(keys={"k1": K1}, active_key_id="k1").encrypt(b"old", aad=AAD)
    rotated = KeyRing(keys={"k1": K1, "k2": K2}, active_key_id="k2")
    assert rotated.decrypt(old, aad=AAD) == b"old"
    assert rotated.encrypt(b"new", aad=AAD).startswith("aesgcm1:k2:")
    retired = KeyRing(keys={"k2": K2}, active_key_id="k2")
    with pytest.raises(DecryptionError, match="k1"):
        retired.decrypt(old, aad=AAD)


def test_a_ring_seals_and_opens_with_the_ciphers_it_built_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ring = KeyRing(keys={"k1": K1, "k2": K2}, active_key_id="k2")
    old = KeyRing(keys={"k1": K1}, active_key_id="k1").encrypt(b"old", aad=AAD)
    built: list[bytes] = []
    real = crypto.AESGCM

    def counting(key: bytes) -> Any:
        built.append(key)
        return real(key)

    monkeypatch.setattr(crypto, "AESGCM", counting)
    sealed = [ring.encrypt(b"detail %d" % n, aad=AAD) for n in range(3)]
    assert [ring.decrypt(value, aad=AAD) for value in sealed] == [
        b"detail 0",
        b"detail 1",
        b"detail 2",
    ]
    assert ring.decrypt(old, aad=AAD) == b"old"
    assert built == []


def test_parse_keys() -> None:
    text = f"k1:{base64.b64encode(K1).decode()}, k2:{base64.b64encode(K2).decode()}\n# comment\n"
    assert parse_keys(text) == {"k1": K1, "k2": K2}
    assert len(parse_keys(f"dev:{generate_key()}")["dev"]) == 32


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        ("k1:not base64!", "not valid base64"),
        (f"{base64.b64encode(K1).decode()}", "id:<base64>"),
        (f"k1:{base64.b64encode(K1).decode()},k1:{base64.b64encode(K2).decode()}", "twice"),
        (f"bad id:{base64.b64encode(K1).decode()}", "id:<base64>"),
    ],
)
def test_bad_keys_are_refused_without_echoing_them(text: str, message: str) -> None:
    with pytest.raises(KeyConfigError, match=message) as error:
        parse_keys(text)
    assert base64.b64encode(K1).decode() not in str(error.value)


def test_the_active_key_must_be_known() -> None:
    with pytest.raises(KeyConfigError):
        KeyRing(keys={"k1": K1}, active_key_id="k2")
