"""Subscribers' phone numbers at rest: sealed with AES-256-GCM, found through a keyed hash.

A number is restricted data. The table keeps it sealed (`aesgcm1:<key id>:<base64url nonce
+ ciphertext>`, the format intake uses for restricted detail, bound to the subscriber's
id) and a keyed hash (HMAC-SHA256 under `fingerprint_key`) to find a subscriber when a
text arrives. Only the delivery plan opens a number, at send time. Keys rotate: the first
key of `rumor_sms_number_keys` seals new numbers, any listed key opens old ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.rumor_control.config import RumorControlSettings

__all__ = ["NumberVault", "SealError"]

_SCHEME = "aesgcm1"
_NONCE_BYTES = 12


class SealError(ValueError):
    """A key or a sealed number that cannot be used (the message never holds either)."""


@dataclass(frozen=True)
class NumberVault:
    """Seals, opens and hashes phone numbers."""

    keys: Mapping[str, bytes] = field(repr=False)
    active_key_id: str
    hash_key: bytes = field(repr=False)

    @classmethod
    def from_settings(cls, settings: RumorControlSettings) -> NumberVault:
        """The vault the settings configure."""
        keys: dict[str, bytes] = {}
        for entry in settings.rumor_sms_number_keys.get_secret_value().split(","):
            key_id, _, encoded = entry.strip().partition(":")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise SealError("each number key must read `id:<base64>`") from None
            if not key_id or len(raw) != 32:
                raise SealError("each number key must read `id:<base64 of 32 bytes>`")
            keys[key_id] = raw
        return cls(
            keys=keys,
            active_key_id=next(iter(keys)),
            hash_key=settings.fingerprint_key.get_secret_value().encode(),
        )

    def lookup_hash(self, number: str) -> str:
        """The keyed hash a subscriber is found by (and the only form logs may carry)."""
        message = b"aviso-sms-subscriber\x00" + number.encode()
        return hmac.new(self.hash_key, message, hashlib.sha256).hexdigest()

    def seal(self, number: str, *, subscriber_id: uuid.UUID) -> str:
        """The number sealed under the active key, bound to its subscriber."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys[self.active_key_id]).encrypt(
            nonce, number.encode(), subscriber_id.bytes
        )
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_SCHEME}:{self.active_key_id}:{payload}"

    def open(self, sealed: str, *, subscriber_id: uuid.UUID) -> str:
        """The number a `seal` produced; SealError if it does not open."""
        scheme, _, rest = sealed.partition(":")
        key_id, _, payload = rest.partition(":")
        key = self.keys.get(key_id)
        if scheme != _SCHEME or key is None:
            raise SealError("sealed number of an unknown scheme or key")
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            opened = AESGCM(key).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], subscriber_id.bytes
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise SealError("the sealed number does not open") from None
        return opened.decode()
