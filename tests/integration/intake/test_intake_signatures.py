"""Signed submissions (`Aviso-Signature`): tampering, age, the future, replays, rotation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.common.signing import request_signature_header, signature_header
from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import Intake, notice_body, run_intake

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

NEW, OLD, RETIRED = b"secret-2026-new", b"secret-2025-old", b"secret-2024-retired"


def _signed(
    body: bytes, secrets: list[bytes], *, at: int | None = None, path: str = "/v1/notices"
) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    signature = request_signature_header(
        secrets, method="POST", target=path, body=body, timestamp=timestamp
    )
    return {"Content-Type": "application/json", "Aviso-Signature": signature}


async def _post(
    intake: Intake, body: bytes, headers: dict[str, str], path: str = "/v1/notices"
) -> httpx.Response:
    return await intake.client.post(
        path, content=body, headers={**intake.auth("field_office"), **headers}
    )


def _reason(response: httpx.Response) -> Any:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Aviso-Signature")
    return response.json()["reason"]


async def test_signatures_checked_when_present(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    settings = intake_settings(
        intake_signing_secrets=[SecretStr(NEW.decode()), SecretStr(OLD.decode())]
    )
    async with run_intake(settings) as intake:
        body = json.dumps(notice_body()).encode()

        # Tampered: one byte of the body changed after signing.
        headers = _signed(body, [NEW])
        tampered = body.replace(b"Mission District", b"Mission Distric!")
        assert _reason(await _post(intake, tampered, headers)) == "mismatch"

        now = int(time.time())
        assert _reason(await _post(intake, body, _signed(body, [NEW], at=now - 301))) == "stale"
        assert _reason(await _post(intake, body, _signed(body, [NEW], at=now + 120))) == "future"
        assert _reason(await _post(intake, body, _signed(body, [RETIRED]))) == "mismatch"
        malformed = {"Content-Type": "application/json", "Aviso-Signature": "v1=abc"}
        assert _reason(await _post(intake, body, malformed)) == "malformed"
        assert await intake.count("notices") == 0

        # A valid signature, then the very same request again: a replay.
        headers = _signed(body, [NEW])
        assert (await _post(intake, body, headers)).status_code == 201
        assert _reason(await _post(intake, body, headers)) == "replayed"

        # Rotation: a sender still on the old secret is accepted, and so is one sending both.
        other = json.dumps(notice_body()).encode()
        assert (await _post(intake, other, _signed(other, [OLD]))).status_code == 201
        third = json.dumps(notice_body()).encode()
        assert (await _post(intake, third, _signed(third, [NEW, OLD]))).status_code == 201

        # Unsigned requests pass while signatures are optional.
        assert (await intake.submit()).status_code == 201
        assert await intake.count("notices") == 4
        assert await intake.count("signature_replays") == 3


async def test_a_replayed_signature_is_refused_on_another_endpoint_too(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    settings = intake_settings(intake_signing_secrets=[SecretStr(NEW.decode())])
    async with run_intake(settings) as intake:
        created = await intake.created()
        other = await intake.created()
        cancel = json.dumps({"reason": "operation_cancelled"}).encode()
        path = f"/v1/notices/{created['id']}/cancel"
        headers = _signed(cancel, [NEW], path=path)
        # Captured, the signed cancellation of one notice is no good for another notice.
        other_path = f"/v1/notices/{other['id']}/cancel"
        assert _reason(await _post(intake, cancel, headers, other_path)) == "mismatch"
        assert _reason(await _post(intake, cancel, headers)) == "mismatch"  # nor as a submission
        assert (await _post(intake, cancel, headers, path)).status_code == 200
        # The same signed body is a replay even where it would otherwise be an idempotent retry.
        assert _reason(await _post(intake, cancel, headers, path)) == "replayed"


async def test_body_only_signatures_need_the_migration_window(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    secret = [SecretStr(NEW.decode())]
    body = json.dumps(notice_body()).encode()
    legacy = {
        "Content-Type": "application/json",
        "Aviso-Signature": signature_header([NEW], body, timestamp=int(time.time())),
    }
    async with run_intake(intake_settings(intake_signing_secrets=secret)) as intake:
        assert _reason(await _post(intake, body, legacy)) == "body_only"
    window = intake_settings(intake_signing_secrets=secret, intake_accept_body_only_signatures=True)
    async with run_intake(window) as intake:
        assert (await _post(intake, body, legacy)).status_code == 201


async def test_signatures_required(intake_settings: Callable[..., IntakeSettings]) -> None:
    settings = intake_settings(
        intake_require_signature=True, intake_signing_secrets=[SecretStr(NEW.decode())]
    )
    async with run_intake(settings) as intake:
        assert _reason(await intake.submit()) == "missing"
        body = json.dumps(notice_body()).encode()
        assert (await _post(intake, body, _signed(body, [NEW]))).status_code == 201
        # Reads are not submissions: they need a token, not a signature.
        assert (
            await intake.client.get("/v1/notices", headers=intake.auth("ops"))
        ).status_code == 200


async def test_a_signature_without_configured_secrets_cannot_be_checked(intake: Intake) -> None:
    body = json.dumps(notice_body()).encode()
    assert _reason(await _post(intake, body, _signed(body, [NEW]))) == "unverifiable"
    assert await intake.count("notices") == 0
