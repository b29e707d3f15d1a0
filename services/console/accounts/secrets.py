"""Password hashing (argon2id), TOTP codes (RFC 6238) and TOTP secrets sealed at rest."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import datetime

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "TOTP_STEP_S",
    "SecretBox",
    "generate_password",
    "hash_password",
    "matching_totp_step",
    "new_totp_secret",
    "provisioning_uri",
    "verify_password",
]

TOTP_STEP_S = 30
_HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
# Verified when the login is unknown, so an unknown login costs as much as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The argon2id hash stored for `password`."""
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored` (None: an unknown login, still hashed once)."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A random password for a new or reset account (shown once)."""
    return secrets.token_urlsafe(15)


def new_totp_secret() -> str:
    """A new base32 TOTP secret."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, login: str, issuer: str = "Aviso") -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=issuer)


def matching_totp_step(secret: str, code: str, *, now: datetime, after: int | None) -> int | None:
    """The time step `code` belongs to (now, or one step either side), if later than `after`.

    Returning the step lets the caller store it: a code is accepted once, never replayed.
    """
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // TOTP_STEP_S
    for step in (current - 1, current, current + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.at(step * TOTP_STEP_S), code):
            return step
    return None


class SecretBox:
    """Seals TOTP secrets with AES-GCM under a key derived from the console secret."""

    def __init__(self, console_secret: str) -> None:
        key = hmac.new(console_secret.encode(), b"aviso-console-totp-seal", hashlib.sha256)
        self._aead = AESGCM(key.digest())

    def seal(self, plaintext: str, *, user_id: str) -> bytes:
        """Nonce + ciphertext, bound to the user it belongs to."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), user_id.encode())

    def open(self, sealed: bytes, *, user_id: str) -> str:
        """The plaintext of `seal`; raises when the key or the user differ."""
        return self._aead.decrypt(sealed[:12], sealed[12:], user_id.encode()).decode()
