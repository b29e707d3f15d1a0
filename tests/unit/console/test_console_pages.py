"""The console's pages with the three services faked behind the HTTP transport: what each
page sends to which API, and what it shows back. The console's own sessions live in an
embedded SQLite file under tmp_path (the services' real APIs are exercised end to end by
tests/e2e/test_console_browser.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from services.common.auth import Role
from services.console.http.inbox import inbox_events
from services.console.http.pages import Viewer
from tests.unit.console.pages_support import FakeServices, console_as, problem

ALERT_ID = str(uuid.uuid4())
NOTICE_ID = str(uuid.uuid4())
SPOC_ID = str(uuid.uuid4())
BULLETIN_ID = str(uuid.uuid4())


def _alert(*, area: str = "District 4", next_at: datetime | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    step = {"step": 0, "person_id": SPOC_ID, "wait_s": 300.0, "via_spoc": True}
    return {
        "id": ALERT_ID, "notice_id": NOTICE_ID, "notice_version": 1, "drill": False,
        "state": "delivered", "needs_acknowledgement": True, "area": area, "window": "tomorrow",
        "summary": "s", "operation_type": "worksite", "urgency": "Expected", "step": 0,
        "repeat": 0, "escalation_count": 0, "triggered_at": now.isoformat(),
        "next_escalation_at": next_at.isoformat() if next_at else None,
        "acknowledged_at": None,
        "snapshot": {"steps": [step, {**step, "step": 1, "via_spoc": False}], "repeat": 0},
    }  # fmt: skip


def _stream_request(signed: Any) -> Request:
    async def never() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    scope = {
        "type": "http", "method": "GET", "path": "/alerts/events", "headers": [],
        "query_string": b"", "app": signed.app, "state": {},
    }  # fmt: skip
    request = Request(scope, receive=never)
    request.state.viewer = Viewer(signed.session, signed.cookie)
    return request


async def test_inbox_stream_pushes_a_new_alert_and_ends_when_router_refuses_the_token(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    listed: dict[str, Any] = {"items": []}
    fake.on("GET", "router", "/v1/alerts", lambda _r: httpx.Response(200, json=listed))
    async with console_as(make_settings, fake, role=Role.CONTACT) as signed:
        me = Viewer(signed.session, signed.cookie)
        events = inbox_events(_stream_request(signed), signed.deps, me, lifetime_s=60)
        assert (await anext(events)).startswith("retry: ")
        first = await anext(events)
        assert first.startswith("event: inbox\n")
        assert "District 9" not in first
        listed["items"] = [_alert(area="District 9")]
        pushed = ""
        async with asyncio.timeout(30):
            while "District 9" not in pushed:
                pushed = await anext(events)
        assert pushed.startswith("event: inbox\n")
        assert f'href="/alerts/{ALERT_ID}"' in pushed
        assert all(line.startswith(("event:", "data:")) for line in pushed.strip().splitlines())
        fake.on("GET", "router", "/v1/alerts", problem(401, []))
        async with asyncio.timeout(30):
            while not pushed.startswith("event: signin"):
                pushed = await anext(events)
        with pytest.raises(StopAsyncIteration):
            await anext(events)
        # Every poll was made with the person's own token.
        tokens = {r.headers["authorization"] for r in fake.sent("GET", "router", "/v1/alerts")}
        assert tokens == {f"Bearer {signed.cookie}"}


async def test_inbox_page_subscribes_to_the_stream_and_reloads_itself_without_script(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    fake.on("GET", "router", "/v1/alerts", {"items": [_alert()]})
    async with console_as(make_settings, fake, role=Role.CONTACT) as signed:
        page = await signed.client.get("/alerts")
    assert page.status_code == 200
    assert 'data-events-url="/alerts/events"' in page.text
    assert '<noscript><meta http-equiv="refresh"' in page.text


async def test_phone_notice_goes_to_intake_as_phone_and_its_errors_show_by_field(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    refusal = problem(422, [{"loc": ["body", "source", "agent", "phone"], "msg": "bad phone"}])
    fake.on("POST", "intake", "/v1/notices", refusal)
    form = {
        "reference": "FO-1", "status": "Actual", "operation_type": "worksite",
        "public_safety_nexus": "yes", "window_start": "2030-05-02T09:00",
        "window_end": "2030-05-02T13:00", "area": "Southside", "area_code": "",
        "summary": "Planned operation.", "field_office_name": "ERO", "agent_name": "D. W.",
        "agent_phone": "nope", "names": "First Person\n\nSecond Person", "free_text": "",
    }  # fmt: skip
    async with console_as(make_settings, fake, role=Role.FIELD_OFFICE, subject="fo-1") as signed:
        refused = await signed.client.post("/notices/new", data={**form, "csrf": signed.csrf})
        assert refused.status_code == 422
        assert 'id="agent_phone-error">bad phone<' in refused.text
        assert 'id="agent_phone" name="agent_phone" type="tel" value="nope"' in refused.text
        sent = FakeServices.body(fake.sent("POST", "intake", "/v1/notices")[0])
        assert sent["received_via"] == "phone"
        assert sent["public_safety_nexus"] is True
        assert sent["restricted"]["names"] == ["First Person", "Second Person"]
        assert sent["window_start"] == "2030-05-02T09:00:00-05:00"  # Madison, daylight time
        recorded = {"id": NOTICE_ID, "reference": "FO-1", "version": 1}
        fake.on("POST", "intake", "/v1/notices", httpx.Response(201, json=recorded))
        done = await signed.client.post("/notices/new", data={**form, "csrf": signed.csrf})
        assert done.status_code == 200
        assert 'id="recorded"' in done.text
        assert NOTICE_ID in done.text


async def test_phone_notice_form_is_offered_only_to_the_role_intake_accepts(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    async with console_as(make_settings, fake, role=Role.CONTACT) as signed:
        page = await signed.client.get("/notices/new")
        posted = await signed.client.post("/notices/new", data={"csrf": signed.csrf})
    assert page.status_code == 403
    assert posted.status_code == 403
    assert not fake.sent("POST", "intake", "/v1/notices")


def _directory(version: int) -> dict[str, Any]:
    person = {"id": SPOC_ID, "name": "A. Reyes", "role": "SPOC", "channels": {"email": "a@x"}}
    return {
        "version": version, "source": "file", "created_by": "admin",
        "created_at": datetime.now(UTC).isoformat(), "digest": "d",
        "directory": {
            "people": [person], "spoc": {"person_id": SPOC_ID, "delegations": []},
            "policy": {"steps": [{"target": "spoc", "person_id": None, "wait_s": 300.0}],
                       "repeat": 1},
        },
    }  # fmt: skip


async def test_directory_review_shows_the_diff_and_saving_shows_routers_errors_by_path(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    fake.on("GET", "router", "/v1/directory", _directory(3))
    errors = [{"path": "spoc.person_id", "message": "names no person in the directory"}]
    fake.on("PUT", "router", "/v1/directory", problem(422, errors))
    async with console_as(make_settings, fake, role=Role.ADMIN) as signed:
        page = await signed.client.get("/admin/directory")
        text = page.text.split('name="text"', 1)[1].split(">", 1)[1].split("</textarea>")[0]
        assert "wait_s: 300.0" in text
        edited = text.replace("wait_s: 300.0", "wait_s: 600.0")
        review = await signed.client.post(
            "/admin/directory/review", data={"text": edited, "csrf": signed.csrf}
        )
        assert review.status_code == 200
        assert "+    wait_s: 600.0" in review.text.replace("&#43;", "+")
        assert "-    wait_s: 300.0" in review.text
        assert 'id="save"' in review.text
        refused = await signed.client.post(
            "/admin/directory", data={"text": edited, "version": "3", "csrf": signed.csrf}
        )
        assert refused.status_code == 422
        assert "<code>spoc.person_id</code>: names no person in the directory" in refused.text
        put = fake.sent("PUT", "router", "/v1/directory")[0]
        assert put.headers["if-match"] == '"v3"'
        assert FakeServices.body(put)["policy"]["steps"][0]["wait_s"] == 600.0
        fake.on("PUT", "router", "/v1/directory", _directory(4))
        saved = await signed.client.post(
            "/admin/directory", data={"text": edited, "version": "3", "csrf": signed.csrf}
        )
        assert saved.status_code == 303
        assert saved.headers["location"] == "/admin/directory?saved=v4"
        broken = await signed.client.post(
            "/admin/directory/review", data={"text": "people: [", "csrf": signed.csrf}
        )
        assert broken.status_code == 422
        assert "Not valid YAML" in broken.text


def _bulletin(state: str) -> dict[str, Any]:
    author, approver = str(uuid.uuid4()), str(uuid.uuid4())
    return {
        "bulletin_id": BULLETIN_ID, "kind": "rumor_fact", "drill": False, "state": state,
        "version_state": "published", "area_code": "district-4", "author_name": "Sgt. A",
        "texts": None, "guardrails": [],
        "signoffs": [
            {"language": "en", "by": approver, "name": "Lt. B", "at": "2026-01-01T00:00:00Z"}
        ],
        "versions": [{"version": 1, "msg_type": "Alert", "state": "published", "author_id": author,
                      "approved_by": approver, "drafted_at": "2026-01-01T00:00:00Z",
                      "reason_codes": []}],
    }  # fmt: skip


async def test_published_bulletin_shows_receipts_per_liaison_and_retracts(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    path = f"/v1/bulletins/{BULLETIN_ID}"
    fake.on("GET", "rumor_control", path, _bulletin("published"))
    liaison, radio = str(uuid.uuid4()), str(uuid.uuid4())
    sent = {"version": 1, "channel": "email", "language": "es", "purpose": "publish",
            "outcome": "delivered", "attempted_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    fake.on("GET", "rumor_control", f"{path}/deliveries", {
        "deliveries": [
            {**sent, "delivery_id": str(uuid.uuid4()), "recipient_id": liaison,
             "recipient_name": "Centro Hispano"},
            {**sent, "delivery_id": str(uuid.uuid4()), "recipient_id": radio,
             "recipient_name": "La Movida radio desk", "outcome": "failed"},
        ],
        "receipts": [{"version": 1, "recipient_id": liaison, "recipient_name": "Centro Hispano",
                      "first_seen_at": "2026-01-01T01:00:00Z",
                      "last_seen_at": "2026-01-01T01:00:00Z", "seen_count": 1}],
    })  # fmt: skip
    fake.on("POST", "rumor_control", f"{path}/retract", _bulletin("retracted"))
    async with console_as(make_settings, fake, role=Role.VETTER) as signed:
        page = await signed.client.get(f"/bulletins/{BULLETIN_ID}")
        assert page.status_code == 200
        rows = page.text.split('id="receipts"', 1)[1].split("</table>")[0]
        assert "Centro Hispano" in rows
        assert "v1 2025-12-31 19:00" in rows
        assert "La Movida radio desk" in rows
        assert "failed" in rows
        assert "not yet" in rows
        assert "approved by Lt. B" in page.text  # the two-person rule, named
        assert 'action="/bulletins/' + BULLETIN_ID + '/retract"' in page.text
        done = await signed.client.post(
            f"/bulletins/{BULLETIN_ID}/retract",
            data={"reason_code": "operation_cancelled", "csrf": signed.csrf},
        )
    assert done.status_code == 303
    retract = fake.sent("POST", "rumor_control", f"{path}/retract")[0]
    assert FakeServices.body(retract) == {"reason_code": "operation_cancelled"}


async def test_ops_board_lists_escalations_due_and_delivery_failures(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    overdue = datetime.now(UTC) - timedelta(minutes=5)
    fake.on("GET", "router", "/v1/alerts", {"items": [_alert(next_at=overdue)]})
    failed = {
        "at": datetime.now(UTC).isoformat(), "kind": "delivery_failed", "step": 0,
        "channel": "webhook", "method": None, "detail": {"error": "HTTP 500", "attempts": 5},
    }  # fmt: skip
    fake.on("GET", "router", f"/v1/alerts/{ALERT_ID}/timeline", {"entries": [failed]})
    for service in ("intake", "router", "rumor_control"):
        fake.on("GET", service, "/internal/ready", {"status": "ready"})
    async with console_as(make_settings, fake, role=Role.OPS) as signed:
        page = await signed.client.get("/ops")
    assert page.status_code == 200
    due = page.text.split('id="escalations-due"', 1)[1].split("</section>")[0]
    assert "next: step 2" in due
    assert "overdue by" in due
    table = page.text.split('id="open-alerts"', 1)[1].split("</table>")[0]
    assert '<strong class="warn">1</strong>: webhook' in table
    assert page.text.count(">ready<") == 3
    assert 'href="/ops/dead-letters"' in page.text
    assert 'href="/ops/audit"' in page.text


def _dead_letter(dead_letter_id: str) -> dict[str, Any]:
    return {
        "dead_letter_id": dead_letter_id, "failed_at": datetime.now(UTC).isoformat(),
        "original_topic": "aviso.notices.v1", "original_partition": 0, "original_offset": 41,
        "consumer_group": "aviso.router", "attempts": 3, "error_type": "NoDirectory",
        "error_message": "no directory is configured",
    }  # fmt: skip


async def test_ops_read_dead_letters_and_replay_the_chosen_ones(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    listed = {"items": [_dead_letter(first), _dead_letter(second)]}
    fake.on("GET", "router", "/v1/ops/dead-letters", listed)
    fake.on("POST", "router", "/v1/ops/dead-letters/replay", {"replayed": [second]})
    async with console_as(make_settings, fake, role=Role.OPS) as signed:
        page = await signed.client.get("/ops/dead-letters")
        forged = await signed.client.post(
            "/ops/dead-letters/replay", data={"id": second, "csrf": "forged"}
        )
        done = await signed.client.post(
            "/ops/dead-letters/replay", data={"id": second, "csrf": signed.csrf}
        )
        after = await signed.client.get(done.headers["location"])
        fake.on("POST", "router", "/v1/ops/dead-letters/replay", problem(404, []))
        gone = await signed.client.post(
            "/ops/dead-letters/replay", data={"id": first, "csrf": signed.csrf}
        )
    assert page.status_code == 200
    assert f'value="{first}"' in page.text
    assert "aviso.notices.v1[0]@41" in page.text
    assert "no directory is configured" in page.text
    assert forged.status_code == 403
    assert done.status_code == 303
    replays = fake.sent("POST", "router", "/v1/ops/dead-letters/replay")
    assert [FakeServices.body(r) for r in replays] == [{"ids": [second]}, {"ids": [first]}]
    assert 'id="replayed"' in after.text
    assert gone.status_code == 409
    assert 'id="dlq-message"' in gone.text


async def test_ops_read_the_audit_chains_verification(make_settings: Callable[..., Any]) -> None:
    fake = FakeServices()
    result = {
        "intact": False, "entries": 11, "head_hash": "ab" * 32, "broken_at": 12,
        "problem": "entry 12 was altered after it was written", "pending": 0, "unkeyed": 0,
        "verified_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    fake.on("GET", "intake", "/v1/ops/audit", result)
    async with console_as(make_settings, fake, role=Role.OPS) as signed:
        page = await signed.client.get("/ops/audit")
    assert page.status_code == 200
    verdict = page.text.split('id="audit-result"', 1)[1].split("</p>")[0]
    assert "BROKEN at entry 12" in verdict
    assert "altered after it was written" in page.text


async def test_the_board_offers_dead_letters_and_audit_to_ops_only(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    fake.on("GET", "router", "/v1/alerts", {"items": []})
    async with console_as(make_settings, fake, role=Role.ADMIN) as signed:
        board = await signed.client.get("/ops")
    assert board.status_code == 200
    assert 'href="/ops/dead-letters"' not in board.text
    assert "for operations staff" in board.text


def _rumor(area: str, *, count: int, assessment: str | None, reason: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "rumor_id": str(uuid.uuid4()), "status": "Actual", "drill": False,
        "area_code": area.lower().replace(" ", "-"), "area": area, "report_count": count,
        "channels": ["phone_line", "radio"], "first_reported_at": now, "last_reported_at": now,
        "first_observed_at": now, "last_observed_at": now, "assessment": assessment,
        "assessment_revision": 0, "as_of": None, "expires_at": None, "expired": False,
        "assessed_by": None, "assessed_by_name": None, "linked_notice_ids": [],
        "suggestion": {"assessment": "Confirmed", "notice_ids": [NOTICE_ID], "reason_code": reason},
    }  # fmt: skip


async def test_the_ledger_shows_clusters_by_place_with_their_suggestions(
    make_settings: Callable[..., Any],
) -> None:
    fake = FakeServices()
    rumors = [
        _rumor("Northside", count=1, assessment="False", reason="suggest.no_matching_notice"),
        _rumor("District 4", count=3, assessment=None, reason="suggest.notice_overlaps"),
        _rumor("District 4", count=1, assessment=None, reason="suggest.notice_overlaps"),
    ]
    fake.on("GET", "rumor_control", "/v1/rumors", rumors)
    async with console_as(make_settings, fake, role=Role.VETTER) as signed:
        page = await signed.client.get("/rumors")
    assert page.status_code == 200
    sections = page.text.split('<section class="cluster"')[1:]
    assert len(sections) == 2
    first = sections[0]
    assert "District 4" in first
    assert "2 rumor(s), 4 report(s)" in first
    assert "2 awaiting assessment" in first
    assert "Suggested: Confirmed: a notice covers this place and time (1 notice(s))" in first
    assert "Northside" in sections[1]
    assert "Assessed: False" in sections[1]
