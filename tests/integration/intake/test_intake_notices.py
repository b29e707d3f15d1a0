"""Recording notices: idempotency, conflicts, version chains, events, validation, listing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.base import parse_event
from schemas.topics import DIRECTORY, NOTICES
from services.intake.repository import Cursor
from tests.integration.intake.intake_support import (
    OUTBOX_LEDGER,
    Intake,
    notice_body,
    revision_body,
)
from tests.support.kafka_io import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


# --- idempotency -----------------------------------------------------------------------


async def test_same_reference_and_content_returns_the_existing_notice(intake: Intake) -> None:
    body = notice_body()
    first = await intake.submit(body)
    assert first.status_code == 201
    assert first.headers["location"] == f"/v1/notices/{first.json()['id']}"

    # Same content, keys in another order and the window in another zone: the same notice.
    shifted = dict(reversed(list(body.items())))
    start = datetime.fromisoformat(body["window_start"]).astimezone(timezone(timedelta(hours=-5)))
    shifted["window_start"] = start.isoformat()
    again = await intake.submit(shifted)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["version"] == 1
    counts = await intake.counts()
    assert counts["notices"] == 1
    assert counts[OUTBOX_LEDGER] == 1  # announced once


async def test_same_reference_with_other_content_is_a_409_problem(intake: Intake) -> None:
    body = notice_body()
    created = await intake.created(body)
    response = await intake.submit({**body, "summary": "A different notice"})
    assert response.status_code == 409
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/reference-conflict")
    assert problem["notice_id"] == created["id"]
    assert body["reference"] in problem["detail"]
    assert "/update" in problem["detail"]
    assert (await intake.counts())["notice_versions"] == 1


async def test_references_are_unique_per_field_office_not_globally(intake: Intake) -> None:
    body = notice_body()
    mine = await intake.created(body)
    theirs = await intake.created(body, who="field_office_b")
    assert mine["id"] != theirs["id"]


async def test_idempotency_key_replays_and_refuses_reuse_for_other_content(intake: Intake) -> None:
    body = notice_body()
    first = await intake.submit(body, **{"Idempotency-Key": "batch-7/item-1"})
    again = await intake.submit(body, **{"Idempotency-Key": "batch-7/item-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]

    other = notice_body()  # another reference and content under the same key
    reused = await intake.submit(other, **{"Idempotency-Key": "batch-7/item-1"})
    assert reused.status_code == 409
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    assert (await intake.counts())["notices"] == 1

    bad = await intake.submit(notice_body(), **{"Idempotency-Key": "spaces are not allowed"})
    assert bad.status_code == 422


async def test_update_and_cancel_are_idempotent(intake: Intake) -> None:
    body = notice_body()
    notice_id = (await intake.created(body))["id"]
    revised = revision_body(body, summary="Window moved an hour later.")
    url = f"/v1/notices/{notice_id}"
    headers = intake.auth("field_office", **{"Idempotency-Key": "upd-1"})

    first = await intake.client.post(f"{url}/update", json=revised, headers=headers)
    retry = await intake.client.post(f"{url}/update", json=revised, headers=headers)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert first.json()["version"] == retry.json()["version"] == 2
    assert retry.headers["idempotent-replayed"] == "true"

    # Without a key, resending the content already current is recognised too.
    plain = await intake.client.post(
        f"{url}/update", json=revised, headers=intake.auth("field_office")
    )
    assert plain.status_code == 200
    assert plain.json()["version"] == 2

    # The key used for other content is refused.
    other = revision_body(body, summary="Something else")
    reused = await intake.client.post(f"{url}/update", json=other, headers=headers)
    assert reused.status_code == 409
    assert reused.json()["type"].endswith("/idempotency-key-reused")

    # Optimistic concurrency: an update for a stale version is refused.
    stale = revision_body(body, summary="Stale", expected_version=1)
    refused = await intake.client.post(
        f"{url}/update", json=stale, headers=intake.auth("field_office")
    )
    assert refused.status_code == 409
    assert refused.json()["current_version"] == 2

    cancel = {"reason": "operation_postponed"}
    done = await intake.client.post(
        f"{url}/cancel", json=cancel, headers=intake.auth("field_office")
    )
    again = await intake.client.post(
        f"{url}/cancel", json=cancel, headers=intake.auth("field_office")
    )
    assert (done.status_code, again.status_code) == (200, 200)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["version"] == 3

    otherwise = await intake.client.post(
        f"{url}/cancel", json={"reason": "entered_in_error"}, headers=intake.auth("field_office")
    )
    assert otherwise.status_code == 409
    assert otherwise.json()["type"].endswith("/notice-cancelled")
    late = await intake.client.post(
        f"{url}/update", json=other, headers=intake.auth("field_office")
    )
    assert late.status_code == 409
    assert late.json()["type"].endswith("/notice-cancelled")
    assert (await intake.counts())["notice_versions"] == 3


# --- version chains and events ------------------------------------------------------------


async def test_update_and_cancel_chain_with_references_reaches_kafka(intake: Intake) -> None:
    body = notice_body(status="Actual")
    correlation = f"corr-{uuid.uuid4().hex[:12]}"
    created = await intake.submit(body, **{"X-Correlation-ID": correlation})
    notice_id = created.json()["id"]
    url = f"/v1/notices/{notice_id}"
    auth = intake.auth("field_office")
    changed_place = revision_body(
        body, restricted={**body["restricted"], "addresses": ["9 Elm Ct"]}
    )
    second = await intake.client.post(f"{url}/update", json=changed_place, headers=auth)
    assert second.status_code == 200
    moved = revision_body(changed_place, summary="Moved to the afternoon.", expected_version=2)
    third = await intake.client.post(f"{url}/update", json=moved, headers=auth)
    assert third.json()["version"] == 3
    cancelled = await intake.client.post(
        f"{url}/cancel", json={"reason": "operation_cancelled"}, headers=auth
    )
    assert cancelled.json()["state"] == "cancelled"

    history = (await intake.client.get(url, headers=intake.auth("contact"))).json()["history"]
    assert [v["msg_type"] for v in history] == ["Alert", "Update", "Update", "Cancel"]
    assert [v["references"] for v in history] == [
        [],
        [f"{notice_id}:1"],
        [f"{notice_id}:1", f"{notice_id}:2"],
        [f"{notice_id}:1", f"{notice_id}:2", f"{notice_id}:3"],
    ]
    assert [v["restricted_changed"] for v in history] == [True, True, False, False]
    assert history[3]["cancel_reason"] == "operation_cancelled"

    records = await read_topic(
        intake.settings.kafka_bootstrap_servers,
        NOTICES,
        until=lambda rs: len(rs) >= 4,
        key_filter=lambda key: key == notice_id.encode(),
    )
    headers = [{k: v.decode() for k, v in r.headers} for r in records]
    assert [h["ce_type"] for h in headers] == [
        "notice.received",
        "notice.updated",
        "notice.updated",
        "notice.cancelled",
    ]
    assert headers[0]["ce_correlationid"] == correlation
    assert all(h["ce_source"] == "aviso.intake" and h["ce_subject"] == notice_id for h in headers)
    events = [parse_event(h["ce_type"], r.value) for h, r in zip(headers, records, strict=True)]
    assert [e.version for e in events] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    assert list(events[3].references) == [f"{notice_id}:{v}" for v in (1, 2, 3)]  # type: ignore[attr-defined]
    received = json.loads(records[0].value)
    assert received["status"] == "Actual"
    assert received["restricted_fingerprints"]
    assert received["fingerprint_key_id"].startswith("fp-")
    assert {a["code"] for a in received["policy_annotations"]} >= {"public_safety_nexus"}
    # The second version changed an address, so its fingerprints differ from the first's.
    assert (
        json.loads(records[1].value)["restricted_fingerprints"]
        != received["restricted_fingerprints"]
    )


# --- validation: nothing stored ------------------------------------------------------------


async def test_invalid_requests_are_problems_and_store_nothing(intake: Intake) -> None:
    auth = intake.auth("field_office")
    post = intake.client.post
    bad_window = notice_body()
    bad_window["window_end"], bad_window["window_start"] = (
        bad_window["window_start"],
        bad_window["window_end"],
    )
    naive = notice_body(window_start="2030-01-01T10:00:00")
    cases = {
        "unknown field": (
            await post("/v1/notices", json={**notice_body(), "priority": "high"}, headers=auth),
            422,
        ),
        "unknown nested field": (
            await post(
                "/v1/notices",
                json=notice_body(restricted={"names": [], "ssn": "x"}),
                headers=auth,
            ),
            422,
        ),
        "window end before start": (await post("/v1/notices", json=bad_window, headers=auth), 422),
        "naive timestamp": (await post("/v1/notices", json=naive, headers=auth), 422),
        "string boolean": (
            await post("/v1/notices", json=notice_body(public_safety_nexus="yes"), headers=auth),
            422,
        ),
        "control character": (
            await post("/v1/notices", json=notice_body(area="District\u00004"), headers=auth),
            422,
        ),
        "lone surrogate": (
            await post(
                "/v1/notices",
                content=json.dumps(notice_body(summary="x")).replace('"x"', '"\\ud800"').encode(),
                headers={**auth, "Content-Type": "application/json"},
            ),
            422,
        ),
        "too large": (
            await post(
                "/v1/notices",
                json=notice_body(summary="x" * (intake.settings.max_body_bytes + 1)),
                headers=auth,
            ),
            413,
        ),
        "not json content type": (
            await post(
                "/v1/notices",
                content=b"reference=x",
                headers={**auth, "Content-Type": "text/plain"},
            ),
            415,
        ),
        "invalid json": (
            await post(
                "/v1/notices",
                content=b'{"reference": ',
                headers={**auth, "Content-Type": "application/json"},
            ),
            400,
        ),
        "invalid utf-8": (
            await post(
                "/v1/notices",
                content=b'{"reference": "\xff\xfe"}',
                headers={**auth, "Content-Type": "application/json"},
            ),
            400,
        ),
    }
    wrong = {name: r.status_code for name, (r, status) in cases.items() if r.status_code != status}
    assert not wrong, wrong
    for response, _ in cases.values():
        assert response.headers["content-type"] == "application/problem+json"
    # The validation problem says where, never echoes what was sent.
    problem = cases["window end before start"][0].json()
    assert problem["errors"]
    assert "input" not in problem["errors"][0]
    assert await intake.counts() == {
        "notices": 0,
        "notice_versions": 0,
        OUTBOX_LEDGER: 0,
        "audit_log": 0,
        "idempotency_keys": 0,
    }


async def test_unknown_notice_is_404_and_bad_ids_are_422(intake: Intake) -> None:
    missing = await intake.client.get(f"/v1/notices/{uuid.uuid4()}", headers=intake.auth("contact"))
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/not-found")
    bad = await intake.client.get("/v1/notices/not-a-uuid", headers=intake.auth("contact"))
    assert bad.status_code == 422


# --- listing ------------------------------------------------------------------------------


async def test_list_filters_and_paginates(intake: Intake) -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    def window(days: int) -> dict[str, str]:
        start = now + timedelta(days=days)
        return {
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=2)).isoformat(),
        }

    ids = []
    for index in range(5):
        body = notice_body(
            status="Actual" if index % 2 == 0 else "Test",
            operation_type="worksite" if index == 4 else "targeted_arrest",
            **window(index),
        )
        ids.append((await intake.created(body))["id"])
    cancelled = ids[1]
    await intake.client.post(
        f"/v1/notices/{cancelled}/cancel",
        json={"reason": "entered_in_error"},
        headers=intake.auth("field_office"),
    )
    get = intake.client.get
    auth = intake.auth("ops")

    async def listed(**params: str | int) -> list[str]:
        response = await get("/v1/notices", params=params, headers=auth)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await listed() == list(reversed(ids))  # newest first
    assert set(await listed(status="Test")) == {ids[1], ids[3]}
    assert await listed(operation_type="worksite") == [ids[4]]
    assert await listed(state="cancelled") == [cancelled]
    assert set(await listed(state="received")) == set(ids) - {cancelled}
    overlap = {
        "window_from": (now + timedelta(days=2)).isoformat(),
        "window_to": (now + timedelta(days=3, hours=1)).isoformat(),
    }
    assert set(await listed(**overlap)) == {ids[2], ids[3]}

    # Keyset pages: every notice once, in order.
    seen, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await get("/v1/notices", params=params, headers=auth)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert await listed(limit=2, offset=2) == list(reversed(ids))[2:4]

    assert (await get("/v1/notices", params={"cursor": "garbage"}, headers=auth)).status_code == 400
    both = await get(
        "/v1/notices", params={"cursor": Cursor(now, ids[0]).encode(), "offset": 1}, headers=auth
    )
    assert both.status_code == 400
    assert (await get("/v1/notices", params={"limit": 0}, headers=auth)).status_code == 422
    assert (await get("/v1/notices", params={"status": "Rumor"}, headers=auth)).status_code == 422
    assert (
        await get("/v1/notices", params={"window_from": "2030-01-01T00:00:00"}, headers=auth)
    ).status_code == 422


async def test_concurrent_submissions_of_one_reference_record_one_notice(intake: Intake) -> None:
    body = notice_body()
    responses = await asyncio.gather(*(intake.submit(body) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    counts = await intake.counts()
    assert (counts["notices"], counts[OUTBOX_LEDGER], counts["audit_log"]) == (1, 1, 1)


async def test_concurrent_updates_make_a_gapless_version_chain(intake: Intake) -> None:
    body = notice_body()
    notice_id = (await intake.created(body))["id"]
    revisions = [revision_body(body, summary=f"Revision {n}") for n in range(5)]
    responses = await asyncio.gather(
        *(
            intake.client.post(
                f"/v1/notices/{notice_id}/update", json=r, headers=intake.auth("field_office")
            )
            for r in revisions
        )
    )
    assert all(r.status_code == 200 for r in responses)
    history = (
        await intake.client.get(f"/v1/notices/{notice_id}", headers=intake.auth("ops"))
    ).json()["history"]
    assert [v["version"] for v in history] == [1, 2, 3, 4, 5, 6]


async def test_openapi_and_asyncapi_describe_the_service(intake: Intake) -> None:
    spec = (await intake.client.get("/openapi.json")).json()
    assert {"/v1/notices", "/v1/notices/{notice_id}", "/v1/notices/{notice_id}/update"} <= set(
        spec["paths"]
    )
    assert "/v1/notices/{notice_id}/cancel" in spec["paths"]
    assert "RestrictedNoticeView" in spec["components"]["schemas"]
    assert (await intake.client.get("/docs")).status_code == 200
    events = (await intake.client.get("/docs/asyncapi.json")).json()
    # Publishes the three notice events; subscribes to router's directory announcements.
    assert {channel["address"] for channel in events["channels"].values()} == {NOTICES, DIRECTORY}
    assert len(events["channels"]) == 4
