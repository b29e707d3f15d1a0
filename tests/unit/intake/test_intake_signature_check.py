"""The submission signature check: optional or required, with rotating secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from services.common.signing import signature_header
from services.intake.config import IntakeSettings
from services.intake.domain import SignatureRejected
from services.intake.http.errors import signature_problem
from services.intake.signatures import SignatureCheck

NOW = 1_800_000_000
NEW, OLD = b"secret-new", b"secret-old"
BODY = b'{"reference":"ERO-1"}'


def check(*, required: bool = False, secrets: tuple[bytes, ...] = (NEW, OLD)) -> SignatureCheck:
    return SignatureCheck(secrets=secrets, required=required, tolerance_s=300, future_skew_s=30)


def reason(signature_check: SignatureCheck, header: str | None, body: bytes = BODY) -> str:
    with pytest.raises(SignatureRejected) as error:
        signature_check.verify(header, body, now=NOW)
    problem = signature_problem(error.value.reason)
    assert problem.status == 401
    assert problem.headers["WWW-Authenticate"].startswith("Aviso-Signature")
    assert problem.extensions["reason"] == error.value.reason
    return error.value.reason


def header(secret: bytes, *, at: int = NOW, body: bytes = BODY) -> str:
    return signature_header([secret], body, timestamp=at)


def test_unsigned_requests_pass_unless_signatures_are_required() -> None:
    assert check().verify(None, BODY, now=NOW) is None
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
    assert c.verify(header(OLD), BODY, now=NOW) is not None
    assert c.verify(header(NEW, at=NOW - 299), BODY, now=NOW) is not None
    both = signature_header([NEW, OLD], BODY, timestamp=NOW)
    assert c.verify(both, BODY, now=NOW) is not None


def test_the_replay_fingerprint_is_what_was_signed_not_how() -> None:
    c = check()
    one = c.verify(header(NEW), BODY, now=NOW)
    other_spelling = c.verify(header(OLD), BODY, now=NOW)
    assert one is not None
    assert other_spelling is not None
    assert one.fingerprint == other_spelling.fingerprint
    assert one.signed_at == NOW


def test_requiring_signatures_needs_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SIGNING_SECRETS"):
        IntakeSettings(var_dir=tmp_path, intake_require_signature=True)
    with pytest.raises(ValueError, match="empty secret"):
        IntakeSettings(var_dir=tmp_path, intake_signing_secrets=[SecretStr("")])
    settings = IntakeSettings(
        var_dir=tmp_path, intake_signing_secrets=[SecretStr("s1"), SecretStr("s2")]
    )
    assert SignatureCheck.from_settings(settings).secrets == (b"s1", b"s2")
