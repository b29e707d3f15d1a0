"""Intake refuses a releasable field that repeats a restricted term (issue 12, item 1).

Through HTTP on the real database and broker: 422 problem+json naming the field, never the
term; nothing is recorded; the same holds for an update, including a term only the previous
version listed.
"""

from __future__ import annotations

from tests.integration.intake.intake_support import Intake, notice_body, revision_body


def _assert_refused(response_text: str, status: int, field: str) -> None:
    assert status == 422, response_text
    assert "quiroga" not in response_text.lower()
    assert field in response_text


async def test_a_submission_repeating_a_restricted_name_is_refused_and_not_recorded(
    intake: Intake,
) -> None:
    before = await intake.counts()
    body = notice_body(summary="Agents will arrest ESTEBAN quiroga at dawn.")
    response = await intake.submit(body)
    _assert_refused(response.text, response.status_code, "summary")
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("restricted-term-in-releasable")
    assert problem["errors"] == [
        {"loc": ["body", "summary"], "msg": problem["errors"][0]["msg"], "type": "restricted_term"}
    ]
    assert await intake.counts() == before

    response = await intake.submit(notice_body(area="CORNER of 19th, and Folsom"))
    _assert_refused(response.text, response.status_code, "area")


async def test_an_update_cannot_move_a_restricted_term_into_the_summary(intake: Intake) -> None:
    body = notice_body()
    created = await intake.created(body)
    notice_id = created["id"]
    moved = revision_body(
        body,
        summary="The operation concerns Esteban Quiroga.",
        restricted={**body["restricted"], "names": []},
    )
    response = await intake.client.post(
        f"/v1/notices/{notice_id}/update", json=moved, headers=intake.auth("field_office")
    )
    _assert_refused(response.text, response.status_code, "summary")
    fine = revision_body(body, summary="The window moved by an hour.")
    response = await intake.client.post(
        f"/v1/notices/{notice_id}/update", json=fine, headers=intake.auth("field_office")
    )
    assert response.status_code == 200, response.text
