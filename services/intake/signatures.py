"""The `Aviso-Signature` check on submissions: when present, or always when required.

A field office's system signs each request with a shared secret (scheme `v2`: HMAC over
timestamp, method, path and body; docs/signing.md). Old body-only `v1` signatures pass
only while `AVISO_INTAKE_ACCEPT_BODY_ONLY_SIGNATURES` allows them. The check here is pure;
remembering a verified request against replays happens in the use case's transaction
(notices/guards.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.signing import SignatureError, verify_request_signature
from services.intake.config import IntakeSettings
from services.intake.domain import SignatureRejected

__all__ = ["SignatureCheck", "SignedRequest"]


@dataclass(frozen=True)
class SignedRequest:
    """A request whose `Aviso-Signature` verified: what to remember against replays."""

    fingerprint: str
    signed_at: int


@dataclass(frozen=True)
class SignatureCheck:
    """Verifies `Aviso-Signature` with the active secrets (several while they rotate)."""

    secrets: tuple[bytes, ...]
    required: bool
    tolerance_s: int
    future_skew_s: int
    accept_body_only: bool = False

    @classmethod
    def from_settings(cls, settings: IntakeSettings) -> SignatureCheck:
        """The check the settings describe."""
        return cls(
            secrets=tuple(
                s.get_secret_value().encode("utf-8") for s in settings.intake_signing_secrets
            ),
            required=settings.intake_require_signature,
            tolerance_s=settings.intake_signature_tolerance_s,
            future_skew_s=settings.intake_signature_future_skew_s,
            accept_body_only=settings.intake_accept_body_only_signatures,
        )

    def verify(
        self, header: str | None, body: bytes, *, method: str, target: str, now: int
    ) -> SignedRequest | None:
        """The verified request, None when unsigned and allowed; raises SignatureRejected.

        `target` is the request's path with its query, as the client sent it.
        """
        if header is None:
            if self.required:
                raise SignatureRejected("missing")
            return None
        if not self.secrets:
            raise SignatureRejected("unverifiable")
        try:
            signed_at, fingerprint = verify_request_signature(
                header,
                method=method,
                target=target,
                body=body,
                secrets=self.secrets,
                now=now,
                tolerance_s=self.tolerance_s,
                future_skew_s=self.future_skew_s,
                accept_body_only=self.accept_body_only,
            )
        except SignatureError as exc:
            raise SignatureRejected(exc.reason) from None
        return SignedRequest(fingerprint=fingerprint, signed_at=signed_at)
