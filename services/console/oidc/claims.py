"""Single sign-on without I/O: the pending sign-in a browser carries, and what an ID token says.

A sign-in through the OpenID Provider spans two requests of the same browser: the console
sends it to the provider with a fresh `state`, `nonce` and PKCE code verifier, and the
provider sends it back with a code. Those three values travel in a cookie sealed with
AES-GCM under a key derived from the console secret (nobody can read or forge them) and
expire after `PENDING_TTL`, so the console keeps no server-side state for half-finished
sign-ins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "PENDING_TTL",
    "OidcIdentity",
    "OidcRefused",
    "PendingSignIn",
    "PendingSignInSealer",
    "RefusalReason",
    "identity_from_claims",
    "normalize_issuer",
]

# Long enough to type a password at the provider, short enough that a stolen cookie is stale.
PENDING_TTL = timedelta(minutes=10)
# OpenID Connect Core 2: `sub` is at most 255 ASCII characters.
_MAX_SUBJECT = 255

RefusalReason = Literal[
    "pending",  # no pending sign-in cookie, or it was forged or expired
    "state",  # the state the provider sent back is not the one this browser was given
    "provider",  # the provider answered with an error (the person cancelled, ...)
    "token",  # the code exchange or the ID token failed a check
    "unavailable",  # the provider could not be reached or its metadata is unusable
    "unknown_identity",  # a valid identity no admin linked to a console account
    "disabled",  # the linked account is disabled
]


class OidcRefused(Exception):
    """A single sign-on refused, with the reason recorded in the audit log."""

    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: RefusalReason = reason
        self.detail = detail


def normalize_issuer(issuer: str) -> str:
    """The issuer as links store it: a trailing slash is not a different provider."""
    return issuer.strip().rstrip("/")


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """Who the provider says signed in: its issuer and the person's `sub` there."""

    issuer: str
    subject: str


def identity_from_claims(claims: Mapping[str, object], *, issuer: str) -> OidcIdentity:
    """The identity of verified ID token claims; refused without a usable `iss` and `sub`.

    Only `iss` and `sub` identify a person (OpenID Connect Core 5.7): an e-mail address
    or a name can be changed or reassigned at the provider, so they never pick an account.
    """
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or normalize_issuer(iss) != normalize_issuer(issuer):
        raise OidcRefused("token", "issuer")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > _MAX_SUBJECT:
        raise OidcRefused("token", "subject")
    return OidcIdentity(issuer=normalize_issuer(iss), subject=sub)


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """What the callback must match: state, nonce, PKCE verifier; and where to go after."""

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    next_path: str
    expires_at: datetime

    @classmethod
    def begin(cls, *, next_path: str, now: datetime) -> PendingSignIn:
        """Fresh random values for one sign-in (the verifier: 64 characters, RFC 7636 4.1)."""
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),
            next_path=next_path,
            expires_at=now + PENDING_TTL,
        )

    def check_state(self, returned: str | None) -> None:
        """Refuse unless the provider returned this sign-in's own state."""
        if not returned or not hmac.compare_digest(self.state, returned):
            raise OidcRefused("state")


class PendingSignInSealer:
    """Seals a PendingSignIn into a cookie value and opens it again (AES-GCM, with expiry)."""

    _AAD = b"aviso-console-oidc-pending"

    def __init__(self, console_secret: str) -> None:
        key = hmac.new(console_secret.encode(), b"aviso-console-oidc-seal", hashlib.sha256)
        self._aead = AESGCM(key.digest())

    def seal(self, pending: PendingSignIn) -> str:
        """The cookie value: url-safe base64 of nonce + ciphertext."""
        body = json.dumps(
            {
                "state": pending.state,
                "nonce": pending.nonce,
                "verifier": pending.code_verifier,
                "next": pending.next_path,
                "exp": pending.expires_at.isoformat(),
            }
        ).encode()
        iv = os.urandom(12)
        return base64.urlsafe_b64encode(iv + self._aead.encrypt(iv, body, self._AAD)).decode()

    def open(self, value: str | None, *, now: datetime) -> PendingSignIn:
        """The pending sign-in of a cookie; refused when missing, forged or expired."""
        if not value or len(value) > 2048:
            raise OidcRefused("pending", "missing")
        try:
            raw = base64.urlsafe_b64decode(value.encode())
            data = json.loads(self._aead.decrypt(raw[:12], raw[12:], self._AAD))
            pending = PendingSignIn(
                state=str(data["state"]),
                nonce=str(data["nonce"]),
                code_verifier=str(data["verifier"]),
                next_path=str(data["next"]),
                expires_at=datetime.fromisoformat(str(data["exp"])),
            )
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise OidcRefused("pending", "unreadable") from None
        if pending.expires_at <= now:
            raise OidcRefused("pending", "expired")
        return pending
