"""A plain submission is answered without FastAPI's dependency solving; every other request
to the route goes through it as before (http/plain_submission.py).

What the route answers is pinned byte for byte by test_intake_answers.py; here, which way
each request took: `solve_dependencies` counted on the route's real handler.
"""

from __future__ import annotations

from typing import Any

import fastapi.routing
import pytest

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
