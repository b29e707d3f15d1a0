"""Every role against every endpoint, including another field office's notice."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.intake.intake_support import Intake, notice_body, revision_body

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

RESTRICTED_KEYS = {"source", "restricted", "restricted_purged_at"}

# Expected status per caller and endpoint. `field_office_b` is another field office:
# it may record notices of its own, but the owner's notice does not exist for it.
MATRIX: dict[str | None, dict[str, int]] = {
    None: {"create": 401, "list": 401, "read": 401, "update": 401, "cancel": 401},
    "vetter": {"create": 403, "list": 403, "read": 403, "update": 403, "cancel": 403},
    "liaison": {"create": 403, "list": 403, "read": 403, "update": 403, "cancel": 403},
    "admin": {"create": 403, "list": 403, "read": 403, "update": 403, "cancel": 403},
    "contact": {"create": 403, "list": 200, "read": 200, "update": 403, "cancel": 403},
    "ops": {"create": 403, "list": 200, "read": 200, "update": 403, "cancel": 403},
    "field_office_b": {"create": 201, "list": 200, "read": 404, "update": 404, "cancel": 404},
    # Last: the owner's cancel ends the notice's life.
    "field_office": {"create": 201, "list": 200, "read": 200, "update": 200, "cancel": 200},
}


async def _call(
    intake: Intake, who: str | None, endpoint: str, notice_id: str, body: dict[str, Any]
) -> Any:
    client, headers = intake.client, intake.auth(who)
    if endpoint == "create":
        return await client.post("/v1/notices", json=notice_body(), headers=headers)
    if endpoint == "list":
        return await client.get("/v1/notices", headers=headers)
    if endpoint == "read":
        return await client.get(f"/v1/notices/{notice_id}", headers=headers)
    if endpoint == "update":
        revised = revision_body(body, summary=f"revised by {who}")
        return await client.post(f"/v1/notices/{notice_id}/update", json=revised, headers=headers)
    return await client.post(
        f"/v1/notices/{notice_id}/cancel", json={"reason": "operation_cancelled"}, headers=headers
    )


async def test_every_role_against_every_endpoint(intake: Intake) -> None:
    body = notice_body()
    notice_id = (await intake.created(body))["id"]

    mismatches = []
    for who, expected in MATRIX.items():
        for endpoint, status in expected.items():
            response = await _call(intake, who, endpoint, notice_id, body)
            if response.status_code != status:
                mismatches.append(f"{who} {endpoint}: {response.status_code}, expected {status}")
                continue
            if status >= 400:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["status"] == status
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
    assert not mismatches, "\n".join(mismatches)


async def test_an_invalid_or_revoked_token_is_401(intake: Intake) -> None:
    response = await intake.client.get(
        "/v1/notices", headers={"Authorization": "Bearer avs_not-a-real-token-0123456789"}
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_what_each_reader_sees(intake: Intake) -> None:
    mine = await intake.created()
    theirs = await intake.created(who="field_office_b")

    # ops: metadata of every notice, restricted fields absent (not null, not blank).
    for who in ("ops", "field_office"):
        detail = (
            await intake.client.get(f"/v1/notices/{mine['id']}", headers=intake.auth(who))
        ).json()
        assert RESTRICTED_KEYS.isdisjoint(detail), who
        assert detail["history"][0]["msg_type"] == "Alert"
        assert detail["policy_annotations"]
    listed = (await intake.client.get("/v1/notices", headers=intake.auth("ops"))).json()
    assert {item["id"] for item in listed["items"]} == {mine["id"], theirs["id"]}
    assert all(RESTRICTED_KEYS.isdisjoint(item) for item in listed["items"])

    # A field office lists only its own.
    own = (await intake.client.get("/v1/notices", headers=intake.auth("field_office"))).json()
    assert [item["id"] for item in own["items"]] == [mine["id"]]
    other = (await intake.client.get("/v1/notices", headers=intake.auth("field_office_b"))).json()
    assert [item["id"] for item in other["items"]] == [theirs["id"]]

    # contact: the restricted detail and the source, decrypted.
    detail = (
        await intake.client.get(f"/v1/notices/{mine['id']}", headers=intake.auth("contact"))
    ).json()
    assert detail["source"]["field_office_id"] == "fo-sf"
    assert detail["source"]["agent"]["name"] == "Dana Whitlock"
    assert detail["source"]["recorded_by"] == "SF field office system"
    assert detail["restricted"]["names"] == ["Esteban Quiroga"]
    assert detail["restricted_purged_at"] is None
    # The contact's list view is metadata too: restricted reads are one notice at a time.
    listed = (await intake.client.get("/v1/notices", headers=intake.auth("contact"))).json()
    assert all(RESTRICTED_KEYS.isdisjoint(item) for item in listed["items"])
