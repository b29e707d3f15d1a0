"""The submission's answers, byte for byte: the 201 (body and headers), the retry's 200,
and the problem+json refusals, for a fixed clock, id and body on both back ends.

The expected bytes were taken from main before the submission lost its session and its
view was built in one validation (eleventh round): what the route does inside may change,
what it answers may not.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.intake.app import compose
from services.intake.config import IntakeSettings
from services.intake.notices import submission
from tests.integration.intake.intake_support import Intake, _issue_tokens, notice_body
from tests.support.apps import running_app

NOW = datetime(2026, 11, 29, 4, 30, 15, 123456, tzinfo=UTC)
NOTICE_ID = uuid.UUID("5b3c1f0e-8d2a-4c71-9e55-0f6a2b7d9c11")
BODY = notice_body(
    "ANSWER-1",
    window_start="2026-11-29T06:00:00+00:00",
    window_end="2026-11-29T09:00:00+00:00",
)
# Headers that differ per request by design.
_PER_REQUEST = {"x-request-id", "date"}

# Taken from main at 5c9fd51 with AVISO_WRITE_ANSWERS=1 (which writes it, then fails).
GOLDEN = Path(__file__).with_name("submission_answers.json")
JSON = "application/json"
CORRELATION_ID = "0d7e4b7a-3f55-4a38-9d4c-2c3e1c5b6a01"


@pytest.fixture
async def fixed(
    intake_settings: Callable[..., IntakeSettings], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Intake]:
    """Intake with a fixed clock and notice ids (in order from NOTICE_ID)."""
    ids = itertools.count(NOTICE_ID.int)
    monkeypatch.setattr(submission, "new_id", lambda: str(uuid.UUID(int=next(ids))))
    settings = intake_settings()
    service = compose(settings, clock=lambda: NOW)
    async with running_app(service.app) as client:
        harness = Intake(service.app, service.deps, client, settings)
        harness.tokens = await _issue_tokens(settings)
        yield harness


def _headers(response: Any) -> list[list[str]]:
    return [[k, v] for k, v in response.headers.multi_items() if k not in _PER_REQUEST]


async def _answers(intake: Intake) -> list[dict[str, Any]]:
    fixed = {"X-Correlation-ID": CORRELATION_ID}
    asked = [
        ("created", await intake.submit(BODY, **fixed)),
        ("replayed", await intake.submit(BODY, **fixed)),
        (
            "keyed",
            await intake.submit(
                {**BODY, "reference": "ANSWER-2"}, **fixed, **{"Idempotency-Key": "k-1"}
            ),
        ),
        ("no token", await intake.submit(BODY, who=None, **fixed)),
        ("wrong role", await intake.submit(BODY, who="ops", **fixed)),
        ("invalid", await intake.submit({**BODY, "reference": ""}, **fixed)),
        ("conflict", await intake.submit({**BODY, "summary": "Something else entirely."}, **fixed)),
        (
            "not json",
            await intake.client.post(
                "/v1/notices",
                content=b"reference=x",
                headers=intake.auth("field_office", **fixed, **{"Content-Type": "text/plain"}),
            ),
        ),
        (
            "malformed",
            await intake.client.post(
                "/v1/notices",
                content=b'{"reference": ',
                headers=intake.auth("field_office", **fixed, **{"Content-Type": JSON}),
            ),
        ),
    ]
    return [
        {
            "name": name,
            "status": response.status_code,
            "body": response.content.decode(),
            "headers": _headers(response),
        }
        for name, response in asked
    ]


async def test_the_submission_answers_byte_for_byte_as_before(fixed: Intake) -> None:
    answers = await _answers(fixed)
    if os.environ.get("AVISO_WRITE_ANSWERS"):
        GOLDEN.write_text(json.dumps(answers, indent=1) + "\n")
        pytest.fail("answers written; run again without AVISO_WRITE_ANSWERS")
    assert answers == json.loads(GOLDEN.read_text())
