"""The submission signature check: optional or required, with rotating secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from services.common.signing import request_signature_header, signature_header
from services.intake.config import IntakeSettings
from services.intake.domain import SignatureRejected
from services.intake.http.errors import signature_problem
from services.intake.signatures import SignatureCheck, SignedRequest

NOW = 1_800_000_000
NEW, OLD = b"secret-new", b"secret-old"
BODY = b'{"reference":"ERO-1"}'


PATH = "/v1/notices"


def check(
    *,
    required: bool = False,
    secrets: tuple[bytes, ...] = (NEW, OLD),
    accept_body_only: bool = False,
) -> SignatureCheck:
    return SignatureCheck(
        secrets=secrets,
        required=required,
        tolerance_s=300,
        future_skew_s=30,
        accept_body_only=accept_body_only,
    )


def verify(
    c: SignatureCheck,
    header: str | None,
    body: bytes = BODY,
    *,
    method: str = "POST",
    target: str = PATH,
) -> object:
    return c.verify(header, body, method=method, target=target, now=NOW)


def reason(
    signature_check: SignatureCheck,
    header: str | None,
    body: bytes = BODY,
    *,
    method: str = "POST",
    target: str = PATH,
) -> str:
    with pytest.raises(SignatureRejected) as error:
        verify(signature_check, header, body, method=method, target=target)
    problem = signature_problem(error.value.reason)
    assert problem.status == 401
    assert problem.headers["WWW-Authenticate"].startswith("Aviso-Signature")
    assert problem.extensions["reason"] == error.value.reason
    return error.value.reason


def header(secret: bytes, *, at: int = NOW, body: bytes = BODY) -> str:
    return request_signature_header([secret], method="POST", target=PATH, body=body, timestamp=at)


def test_unsigned_requests_pass_unless_signatures_are_required() -> None:
    assert verify(check(), None) is None
    assert reason(check(required=True), None) == "missing"


def test_each_kind_of_bad_signature_has_its_reason() -> None:
    c = check()
    assert reason(c, header(NEW), BODY.replace(b"1", b"2")) == "mismatch"
    assert reason(c, header(NEW, at=NOW - 301)) == "stale"
    assert reason(c, header(NEW, at=NOW + 31)) == "future"
    assert reason(c, header(b"retired")) == "mismatch"
    assert reason(c, "t=abc,v1=00") == "malformed"
    assert reason(check(secrets=()), header(NEW)) == "unverifiable"


def test_rotation_accepts_either_active_secret() -> None:
    c = check()
    assert verify(c, header(OLD)) is not None
    assert verify(c, header(NEW, at=NOW - 299)) is not None
    both = request_signature_header(
        [NEW, OLD], method="POST", target=PATH, body=BODY, timestamp=NOW
    )
    assert verify(c, both) is not None


def test_the_replay_fingerprint_is_what_was_signed_not_how() -> None:
    c = check()
    one = verify(c, header(NEW))
    other_spelling = verify(c, header(OLD))
    assert isinstance(one, SignedRequest)
    assert isinstance(other_spelling, SignedRequest)
    assert one.fingerprint == other_spelling.fingerprint
    assert one.signed_at == NOW


def test_a_signature_covers_method_and_path() -> None:
    c = check()
    assert reason(c, header(NEW), target="/v1/notices/x/cancel") == "mismatch"
    assert reason(c, header(NEW), method="PUT") == "mismatch"
    assert reason(c, header(NEW), target=PATH + "?a=1") == "mismatch"


def test_body_only_signatures_pass_only_in_a_migration_window() -> None:
    legacy = signature_header([NEW], BODY, timestamp=NOW)
    assert reason(check(), legacy) == "body_only"
    window = check(accept_body_only=True)
    accepted = verify(window, legacy, target="/anywhere")
    assert isinstance(accepted, SignedRequest)
    # Remembered by body alone: used once on one endpoint, it is used up on every other.
    elsewhere = verify(window, legacy, target="/v1/notices/x/cancel")
    assert isinstance(elsewhere, SignedRequest)
    assert accepted.fingerprint == elsewhere.fingerprint


def test_requiring_signatures_needs_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SIGNING_SECRETS"):
        IntakeSettings(var_dir=tmp_path, intake_require_signature=True)
    with pytest.raises(ValueError, match="empty secret"):
        IntakeSettings(var_dir=tmp_path, intake_signing_secrets=[SecretStr("")])
    settings = IntakeSettings(
        var_dir=tmp_path, intake_signing_secrets=[SecretStr("s1"), SecretStr("s2")]
    )
    assert SignatureCheck.from_settings(settings).secrets == (b"s1", b"s2")
