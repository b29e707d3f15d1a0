"""A submission's restricted detail is gathered once: by the route, which scrubs it from the
log while the use case runs and hands the same detail to the use case."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.common.auth import Principal
from services.intake.http import notices as notices_http
from services.intake.http.notices import notices_router
from services.intake.notices import sealing
from services.intake.notices import submission as submission_module
from services.intake.notices.commands import NoticeContent
from tests.unit.intake.fakes import FIELD_OFFICE, Store, make_deps
from tests.unit.intake.test_notices_use_cases import submission


class _Verifier:
    async def verify(self, token: str) -> Principal | None:
        return FIELD_OFFICE if token == "fo-token" else None


async def test_a_plain_submission_gathers_its_restricted_detail_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gathered: list[str] = []
    real = sealing.restricted_detail

    def counting(content: NoticeContent, principal: Principal) -> Any:
        gathered.append(principal.subject)
        return real(content, principal)

    monkeypatch.setattr(notices_http, "restricted_detail", counting)
    monkeypatch.setattr(submission_module, "restricted_detail", counting)
    store = Store()
    app = FastAPI()
    app.include_router(notices_router(make_deps(store)))
    app.state.token_verifier = _Verifier()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        answer = await client.post(
            "/v1/notices",
            json=submission("ERO-ONCE").model_dump(mode="json"),
            headers={"Authorization": "Bearer fo-token"},
        )
    assert answer.status_code == 201, answer.text
    assert gathered == ["fo-sf"]  # fails on main: the route's and the use case's
    # The detail the use case sealed is the submission's.
    (version,) = store.versions[answer.json()["id"]]
    assert version.restricted_sealed is not None
