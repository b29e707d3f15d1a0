"""A plain submission is answered without FastAPI's dependency solving, and without its
routing; every other request to the route goes through both as before
(http/plain_submission.py, http/submission_layer.py).

What the route answers is pinned byte for byte by test_intake_answers.py; here, which way
each request took: `solve_dependencies` counted on the route's real handler, and the
route's `handle` (where FastAPI's router hands a request to it).
"""

from __future__ import annotations

from typing import Any

import fastapi.routing
import pytest
from prometheus_client import REGISTRY
from starlette.types import Receive, Scope, Send

from tests.integration.intake.intake_support import Intake, notice_body


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests FastAPI solved dependencies for, in order."""
    calls: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counted(*, request: Any, **kwargs: Any) -> Any:
        calls.append(request.url.path)
        return await solve(request=request, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    return calls


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The methods and paths of the requests FastAPI's router handed to a route, in order."""
    calls: list[str] = []
    handle = fastapi.routing.APIRoute.handle

    async def counted(
        self: fastapi.routing.APIRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        calls.append(f"{scope['method']} {scope['path']}")
        await handle(self, scope, receive, send)

    monkeypatch.setattr(fastapi.routing.APIRoute, "handle", counted)
    return calls


def _answered(status: int) -> float:
    """Intake's count of `POST /v1/notices` answered with `status` (the metrics' label)."""
    labels = {"service": "intake", "route": "/v1/notices", "method": "POST", "status": str(status)}
    return REGISTRY.get_sample_value("aviso_http_requests_total", labels) or 0.0


async def test_a_plain_submission_is_not_routed_by_fastapi(
    intake: Intake, routed: list[str]
) -> None:
    body = notice_body()
    before = {status: _answered(status) for status in (201, 200, 409)}
    created = await intake.submit(body)
    again = await intake.submit(body)
    conflict = await intake.submit({**body, "area": "Elsewhere"})  # same reference, other content

    assert (created.status_code, again.status_code, conflict.status_code) == (201, 200, 409)
    assert routed == []
    # What the middlewares outside give every request, and the route's label in metrics.
    for response in (created, again, conflict):
        assert response.headers["x-request-id"]
        assert response.headers["x-correlation-id"]
    assert conflict.headers["content-type"] == "application/problem+json"
    assert conflict.json()["correlation_id"] == conflict.headers["x-correlation-id"]
    assert {status: _answered(status) - before[status] for status in before} == {
        201: 1.0,
        200: 1.0,
        409: 1.0,
    }
    # Not plain (a key): routed as before, tried by the layer only.
    keyed = await intake.submit(notice_body(), **{"Idempotency-Key": "k-routed-1"})
    assert keyed.status_code == 201
    assert routed == ["POST /v1/notices"]


async def test_a_plain_submission_is_not_solved_by_fastapi(
    intake: Intake, solved: list[str]
) -> None:
    body = notice_body()
    created = await intake.submit(body)
    again = await intake.submit(body)  # the same reference and content: the retry's 200

    assert (created.status_code, again.status_code) == (201, 200)
    assert created.headers["location"] == f"/v1/notices/{created.json()['id']}"
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == created.json()
    assert solved == []
    # The notice was written and is read back through the ordinary (solved) route.
    read = await intake.client.get(created.headers["location"], headers=intake.auth("contact"))
    assert read.status_code == 200
    assert solved == [created.headers["location"]]


@pytest.mark.parametrize(
    ("who", "headers", "body", "status"),
    [
        (None, {}, None, 401),
        ("ops", {}, None, 403),
        (None, {"Authorization": "Basic abc"}, None, 401),
        ("field_office", {"Idempotency-Key": "k-plain-1"}, None, 201),
        ("field_office", {"Idempotency-Key": "not a key"}, None, 422),
        ("field_office", {}, {"reference": ""}, 422),
    ],
    ids=["no-token", "wrong-role", "not-bearer", "keyed", "bad-key", "invalid-body"],
)
async def test_any_other_request_is_answered_by_fastapi(
    intake: Intake,
    solved: list[str],
    who: str | None,
    headers: dict[str, str],
    body: dict[str, Any] | None,
    status: int,
) -> None:
    response = await intake.submit({**notice_body(), **(body or {})}, who, **headers)

    assert response.status_code == status, response.text
    assert solved == ["/v1/notices"]


async def test_a_body_that_is_not_json_is_answered_by_fastapi(
    intake: Intake, solved: list[str]
) -> None:
    response = await intake.client.post(
        "/v1/notices",
        content=b'{"reference": ',
        headers=intake.auth("field_office", **{"Content-Type": "application/json"}),
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert solved == []  # refused while FastAPI read the body, before any dependency


async def test_a_dependency_stand_in_sends_even_a_plain_submission_through_fastapi(
    intake: Intake, solved: list[str]
) -> None:
    async def never_called() -> None:
        raise AssertionError("overridden for nothing")

    intake.app.dependency_overrides[never_called] = never_called
    try:
        response = await intake.submit(notice_body())
    finally:
        intake.app.dependency_overrides.clear()

    assert response.status_code == 201, response.text
    assert solved == ["/v1/notices"]
