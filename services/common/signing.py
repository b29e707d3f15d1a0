"""HMAC request signatures (`Aviso-Signature`) and compact signed links.

Two schemes share the header, each with one signature per active secret so a secret can be
rotated without a flag day:

- `v2` (requests to Aviso, e.g. a field office's system to intake) covers the method, the
  path (with its query) and the timestamp as well as the body:
  `t=<unix>,v2=<hex hmac-sha256(secret, "<t>\n<METHOD>\n<path>\n" + body)>`. A captured
  request cannot be replayed against another endpoint. docs/signing.md has a worked example.
- `v1` (outgoing webhooks, and old field-office clients during a migration window) covers
  the timestamp and the body: `t=<unix>,v1=<hex hmac-sha256(secret, "<t>." + body)>`.

Signed links carry claims (an alert id, an expiry) in a URL a person can click once.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = [
    "SIGNATURE_HEADER",
    "LinkTokenError",
    "SignatureError",
    "make_link_token",
    "read_link_token",
    "request_signature_header",
    "sign_payload",
    "sign_request",
    "signature_fingerprint",
    "signature_header",
    "verify_request_signature",
    "verify_signature",
]

SIGNATURE_HEADER = "Aviso-Signature"

SignatureReason = Literal["malformed", "stale", "future", "mismatch", "body_only"]
LinkTokenReason = Literal["malformed", "expired", "mismatch"]

# Bounds on what we parse, so a hostile header cannot make us do much work.
_MAX_HEADER_LENGTH = 2048
_MAX_SIGNATURES = 8
_MAX_TOKEN_LENGTH = 4096
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

# Link tokens MAC a different message shape than request signatures, and this
# prefix makes sure a MAC made for one can never be replayed as the other, even
# if an operator configures the same secret for both.
_LINK_MAC_CONTEXT = b"aviso-link-v1."


class SignatureError(Exception):
    """A request signature that does not verify; `reason` says why."""

    def __init__(self, reason: SignatureReason) -> None:
        super().__init__(reason)
        self.reason: SignatureReason = reason


class LinkTokenError(Exception):
    """A signed link token that must not be honoured; `reason` says why."""

    def __init__(self, reason: LinkTokenReason) -> None:
        super().__init__(reason)
        self.reason: LinkTokenReason = reason


def _check_secrets(secrets: Sequence[bytes]) -> None:
    # A missing secret is a configuration error, not a bad request.
    if not secrets or any(not secret for secret in secrets):
        raise ValueError("at least one non-empty secret is required")


def sign_payload(secret: bytes, body: bytes, *, timestamp: int) -> str:
    """Return the hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    _check_secrets([secret])
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[bytes], body: bytes, *, timestamp: int) -> str:
    """Return an `Aviso-Signature` value with one `v1` per active secret."""
    _check_secrets(secrets)
    if timestamp < 0:
        raise ValueError("timestamp must not be negative")
    parts = [f"t={timestamp}"]
    parts.extend(f"v1={sign_payload(secret, body, timestamp=timestamp)}" for secret in secrets)
    return ",".join(parts)


def _parse_schemes(header: str) -> tuple[int, dict[str, list[str]]]:
    """Split a header into its timestamp and its v1 and v2 signatures, or raise `malformed`."""
    if not isinstance(header, str) or not header or len(header) > _MAX_HEADER_LENGTH:
        raise SignatureError("malformed")
    timestamp: int | None = None
    schemes: dict[str, list[str]] = {"v1": [], "v2": []}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed")
        key, value = key.strip(), value.strip()
        if key == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                raise SignatureError("malformed")
            timestamp = int(value)
        elif key in schemes:
            if not _HEX_SHA256.fullmatch(value):
                raise SignatureError("malformed")
            schemes[key].append(value)
        # Other schemes (v0, v3, ...) are ignored so senders can add a new scheme
        # alongside before every receiver understands it.
    count = sum(len(values) for values in schemes.values())
    if timestamp is None or count == 0 or count > _MAX_SIGNATURES:
        raise SignatureError("malformed")
    return timestamp, schemes


def _parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and v1 signatures of a header, or raise `malformed`."""
    timestamp, schemes = _parse_schemes(header)
    if not schemes["v1"]:
        raise SignatureError("malformed")
    return timestamp, schemes["v1"]


def _check_time(timestamp: int, *, now: int, tolerance_s: int, future_skew_s: int) -> None:
    # Time first: it is cheap, and a stale or future timestamp is refused whatever the
    # signature says.
    if now - timestamp > tolerance_s:
        raise SignatureError("stale")
    if timestamp - now > future_skew_s:
        raise SignatureError("future")


def _any_matches(provided: Sequence[str], expected: Sequence[str]) -> bool:
    matched = False
    # No early exit: every pair is compared, each in constant time.
    for candidate in provided:
        for wanted in expected:
            matched |= hmac.compare_digest(candidate, wanted)
    return matched


def verify_signature(
    header: str,
    body: bytes,
    secrets: Sequence[bytes],
    *,
    now: int,
    tolerance_s: int = 300,
    future_skew_s: int = 30,
) -> int:
    """Verify an `Aviso-Signature` against any active secret; return its timestamp."""
    _check_secrets(secrets)
    timestamp, signatures = _parse_header(header)
    _check_time(timestamp, now=now, tolerance_s=tolerance_s, future_skew_s=future_skew_s)
    expected = [sign_payload(secret, body, timestamp=timestamp) for secret in secrets]
    if not _any_matches(signatures, expected):
        raise SignatureError("mismatch")
    return timestamp


def _request_message(method: str, target: str, body: bytes, timestamp: int) -> bytes:
    # Newlines separate the parts: none can occur in a timestamp, a method or a request
    # target, so no two requests share a message.
    return f"{timestamp}\n{method.upper()}\n{target}\n".encode() + body


def sign_request(secret: bytes, *, method: str, target: str, body: bytes, timestamp: int) -> str:
    """The hex `v2` HMAC-SHA256 of a request: timestamp, method, path with query, body."""
    _check_secrets([secret])
    message = _request_message(method, target, body, timestamp)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def request_signature_header(
    secrets: Sequence[bytes], *, method: str, target: str, body: bytes, timestamp: int
) -> str:
    """An `Aviso-Signature` for a request to Aviso: one `v2` per active secret."""
    _check_secrets(secrets)
    if timestamp < 0:
        raise ValueError("timestamp must not be negative")
    parts = [f"t={timestamp}"]
    parts.extend(
        "v2=" + sign_request(s, method=method, target=target, body=body, timestamp=timestamp)
        for s in secrets
    )
    return ",".join(parts)


def verify_request_signature(
    header: str,
    *,
    method: str,
    target: str,
    body: bytes,
    secrets: Sequence[bytes],
    now: int,
    tolerance_s: int = 300,
    future_skew_s: int = 30,
    accept_body_only: bool = False,
) -> tuple[int, str]:
    """Verify a request's `Aviso-Signature`; return its timestamp and replay fingerprint.

    `v2` signatures are checked when present. A header with only `v1` (body-only) ones is
    refused as `body_only` unless `accept_body_only` (a migration window) allows it.
    """
    _check_secrets(secrets)
    timestamp, schemes = _parse_schemes(header)
    if not schemes["v2"] and not accept_body_only:
        raise SignatureError("body_only")
    _check_time(timestamp, now=now, tolerance_s=tolerance_s, future_skew_s=future_skew_s)
    if schemes["v2"]:
        expected = [
            sign_request(s, method=method, target=target, body=body, timestamp=timestamp)
            for s in secrets
        ]
        if not _any_matches(schemes["v2"], expected):
            raise SignatureError("mismatch")
        message = _request_message(method, target, body, timestamp)
        # Hashes "<t>\n..." where a v1 fingerprint hashes "<t>." + body: never equal.
        return timestamp, hashlib.sha256(message).hexdigest()
    legacy = [sign_payload(secret, body, timestamp=timestamp) for secret in secrets]
    if not _any_matches(schemes["v1"], legacy):
        raise SignatureError("mismatch")
    # A body-only signature is valid on any endpoint, so it is remembered as the body
    # alone: used once anywhere, it is used up everywhere.
    return timestamp, signature_fingerprint(header, body)


def signature_fingerprint(header: str, body: bytes) -> str:
    """Return a replay-detection key for a signed request: what was signed, not how."""
    # Keyed on the timestamp and the body rather than on the header text: the
    # header can be re-spelt (reordered, spaces, a rotated secret's v1 dropped)
    # and still verify, and each spelling would otherwise slip past a replay table.
    timestamp, _ = _parse_header(header)
    return hashlib.sha256(f"{timestamp}.".encode("ascii") + body).hexdigest()


# --- signed links ---------------------------------------------------------------


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode unpadded base64url, accepting only the one canonical spelling."""
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise LinkTokenError("malformed")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise LinkTokenError("malformed") from None
    # The last character of unpadded base64 has spare bits; without this check two
    # different strings would decode to the same bytes and both be honoured.
    if _b64encode(raw) != text:
        raise LinkTokenError("malformed")
    return raw


def _link_mac(secret: bytes, payload_segment: str) -> bytes:
    return hmac.new(
        secret, _LINK_MAC_CONTEXT + payload_segment.encode("ascii"), hashlib.sha256
    ).digest()


def make_link_token(secret: bytes, claims: Mapping[str, str | int], *, expires_at: int) -> str:
    """Return `base64url(JSON claims incl. exp) + "." + base64url(HMAC-SHA256)`."""
    _check_secrets([secret])
    if "exp" in claims:
        raise ValueError("`exp` is set from expires_at, not from claims")
    for key, value in claims.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"claim {key!r} must map a string to a string or an integer")
    body = {**claims, "exp": expires_at}
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    payload_segment = _b64encode(payload.encode("ascii"))
    return f"{payload_segment}.{_b64encode(_link_mac(secret, payload_segment))}"


def read_link_token(
    secret_or_secrets: bytes | Sequence[bytes], token: str, *, now: int
) -> dict[str, str | int]:
    """Return a link token's claims (incl. `exp`) if authentic and unexpired."""
    secrets = (
        [secret_or_secrets] if isinstance(secret_or_secrets, bytes) else list(secret_or_secrets)
    )
    _check_secrets(secrets)
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise LinkTokenError("malformed")
    payload_segment, mac_segment = token.split(".")
    provided = _b64decode(mac_segment)
    _b64decode(payload_segment)  # structure only; nothing is trusted before the MAC
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(provided, _link_mac(secret, payload_segment))
    if not matched:
        raise LinkTokenError("mismatch")
    claims = _parse_claims(_b64decode(payload_segment))
    expires_at = claims["exp"]
    if not isinstance(expires_at, int) or now >= expires_at:
        raise LinkTokenError("expired")
    return claims


def _parse_claims(raw: bytes) -> dict[str, str | int]:
    try:
        decoded: Any = json.loads(raw)
    except ValueError:
        raise LinkTokenError("malformed") from None
    if not isinstance(decoded, dict) or "exp" not in decoded:
        raise LinkTokenError("malformed")
    claims: dict[str, str | int] = {}
    for key, value in decoded.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise LinkTokenError("malformed")
        claims[key] = value
    if not isinstance(claims["exp"], int):
        raise LinkTokenError("malformed")
    return claims
