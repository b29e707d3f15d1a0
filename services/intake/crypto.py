"""AES-256-GCM encryption of restricted detail at rest, with key ids for rotation.

Every stored value names the key that sealed it (`aesgcm1:<key id>:<base64url nonce +
ciphertext>`), so a new key can become active while rows sealed under older keys stay
readable for as long as those keys remain listed. Each value is bound to where it is
stored through AES-GCM's associated data: a ciphertext copied onto another notice or
version fails to open instead of showing the wrong notice's detail.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.logging import get_logger
from services.intake.config import IntakeSettings

__all__ = [
    "DEV_KEY_FILE_NAME",
    "DecryptionError",
    "KeyConfigError",
    "KeyRing",
    "generate_key",
    "load_keyring",
    "parse_keys",
]

log = get_logger(__name__)

_SCHEME = "aesgcm1"
_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # the size GCM is designed for; random per value
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
DEV_KEY_FILE_NAME = "intake-dev.keys"


class KeyConfigError(ValueError):
    """The configured keys are unusable (bad format, wrong length, unknown active id)."""


class DecryptionError(Exception):
    """A stored value cannot be opened: unknown key id, corrupt, or moved elsewhere."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key() -> str:
    """A new random key, base64-encoded as the settings expect it."""
    return base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode("ascii")


def parse_keys(text: str) -> dict[str, bytes]:
    """Parse `id:<base64>` entries separated by commas or newlines (`#` starts a comment)."""
    keys: dict[str, bytes] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for entry in line.split(","):
            entry = entry.strip()
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep or not _KEY_ID.fullmatch(key_id):
                # Never echo the entry: it holds key material.
                raise KeyConfigError("each key must read `id:<base64>` with a short id")
            try:
                raw = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise KeyConfigError(f"key {key_id!r} is not valid base64") from None
            if len(raw) != _KEY_BYTES:
                raise KeyConfigError(f"key {key_id!r} must be {_KEY_BYTES} bytes, not {len(raw)}")
            if key_id in keys:
                raise KeyConfigError(f"key {key_id!r} is listed twice")
            keys[key_id] = raw
    return keys


@dataclass(frozen=True)
class KeyRing:
    """The known keys and the one that seals new values."""

    keys: Mapping[str, bytes] = field(repr=False)
    active_key_id: str
    # One cipher object per key, made once: every submission seals a version, and a new
    # `AESGCM` (its key checked and copied again) was ~1 us of each seal.
    _ciphers: Mapping[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.active_key_id not in self.keys:
            raise KeyConfigError(f"the active key {self.active_key_id!r} is not configured")
        ciphers = {key_id: AESGCM(key) for key_id, key in self.keys.items()}
        object.__setattr__(self, "_ciphers", ciphers)

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> str:
        """Seal `plaintext` under the active key, bound to `aad` (where it is stored)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.active_key_id].encrypt(nonce, plaintext, aad)
        return f"{_SCHEME}:{self.active_key_id}:{_b64url(nonce + sealed)}"

    def decrypt(self, token: str, *, aad: bytes) -> bytes:
        """Open a value sealed by `encrypt` with any known key; raises DecryptionError."""
        scheme, _, rest = token.partition(":")
        key_id, _, payload = rest.partition(":")
        if scheme != _SCHEME or not payload:
            raise DecryptionError("not an encrypted value")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(f"key {key_id!r} is not configured")
        try:
            raw = _unb64url(payload)
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError("the value does not open with its key") from None

    @staticmethod
    def key_id_of(token: str) -> str:
        """The id of the key that sealed `token` (for rotation reports)."""
        return token.split(":", 2)[1] if token.count(":") >= 2 else ""


def _dev_keys(var_dir: Path) -> str:
    """Read, or create once, a development key file under `var_dir`."""
    path = var_dir / DEV_KEY_FILE_NAME
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write("# development key generated by aviso intake; not for production\n")
                handle.write(f"dev1:{generate_key()}\n")
    log.warning(
        "intake.dev_encryption_key",
        key_file=str(path),
        hint="set AVISO_INTAKE_ENCRYPTION_KEYS or AVISO_INTAKE_ENCRYPTION_KEY_FILE",
    )
    return path.read_text(encoding="ascii")


def load_keyring(settings: IntakeSettings) -> KeyRing:
    """The key ring from settings, a key file, or (development) a generated key in var/."""
    text = ""
    if settings.intake_encryption_keys is not None:
        text += settings.intake_encryption_keys.get_secret_value() + "\n"
    if settings.intake_encryption_key_file is not None:
        try:
            text += settings.intake_encryption_key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyConfigError(f"cannot read the key file: {exc.strerror}") from None
    if not text.strip():
        text = _dev_keys(settings.var_dir)
    keys = parse_keys(text)
    if not keys:
        raise KeyConfigError("no encryption key is configured")
    active = settings.intake_encryption_active_key_id or next(iter(keys))
    return KeyRing(keys=keys, active_key_id=active)
