"""The pure helpers behind the new pages: problem paths, the directory diff, escalations
due, receipts per liaison, the phone-notice body and server-sent event framing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.console.api import ApiProblem
from services.console.http.bulletins import liaison_receipts
from services.console.http.directory import DirectoryInput, directory_diff, parse_directory
from services.console.http.inbox import sse_event
from services.console.http.notices import errors_by_field, notice_body
from services.console.http.ops import escalations_due, next_step
from services.console.http.problems import field_errors, path_of
from services.console.i18n import catalog

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def test_problem_errors_are_keyed_by_the_path_of_their_field() -> None:
    assert path_of(["body", "people", 0, "channels", "email"]) == "people[0].channels.email"
    assert path_of(["body"]) == ""
    schema = ApiProblem(422, "Invalid", "d", {"errors": [{"loc": ["body", "area"], "msg": "m"}]})
    rules = ApiProblem(422, "Refused", "d", {"errors": [{"path": "policy", "message": "none"}]})
    assert field_errors(schema) == {"area": "m"}
    assert field_errors(rules) == {"policy": "none"}
    assert field_errors(ApiProblem(412, "Changed", "read it again", {})) == {"": "read it again"}


def test_directory_diff_marks_added_and_removed_lines_only() -> None:
    current = {"policy": {"steps": [{"target": "spoc", "wait_s": 300.0}], "repeat": 1}}
    proposed = parse_directory(
        "policy:\n  steps:\n  - target: spoc\n    wait_s: 600.0\n  repeat: 1\n"
    )
    diff = directory_diff(current, proposed)
    assert ("del", "-    wait_s: 300.0") in diff
    assert ("add", "+    wait_s: 600.0") in diff
    assert directory_diff(current, current) == []


def test_directory_yaml_keeps_timestamps_as_the_api_writes_them_and_refuses_non_mappings() -> None:
    parsed = parse_directory("spoc:\n  delegations:\n  - starts_at: 2026-12-20T00:00:00-06:00\n")
    assert parsed["spoc"]["delegations"][0]["starts_at"] == "2026-12-20T00:00:00-06:00"
    with pytest.raises(DirectoryInput, match="line 1"):
        parse_directory("people: [")
    with pytest.raises(DirectoryInput):
        parse_directory("- a list")


def _alert(step: int, repeat: int, next_at: datetime | None) -> dict[str, Any]:
    steps = [{"step": i, "person_id": f"p{i}", "via_spoc": i == 0} for i in range(2)]
    return {
        "id": f"a{step}{repeat}",
        "step": step,
        "repeat": repeat,
        "needs_acknowledgement": True,
        "next_escalation_at": next_at.isoformat() if next_at else None,
        "snapshot": {"steps": steps, "repeat": 1},
    }


def test_next_step_follows_the_policy_then_its_repeats_then_nothing() -> None:
    later = NOW + timedelta(minutes=5)
    assert next_step(_alert(0, 0, later))["person_id"] == "p1"  # type: ignore[index]
    wrapped = next_step(_alert(1, 0, later))
    assert wrapped == {"step": 0, "person_id": "p0", "via_spoc": True, "round": 1}
    assert next_step(_alert(1, 1, later)) is None
    assert next_step(_alert(0, 0, None)) is None


def test_escalations_due_are_soonest_first_with_overdue_ones_negative() -> None:
    soon, overdue = (
        _alert(0, 0, NOW + timedelta(minutes=9)),
        _alert(1, 0, NOW - timedelta(minutes=3)),
    )
    quiet = _alert(0, 0, None)
    due = escalations_due([soon, quiet, overdue], NOW)
    assert [d["alert"]["id"] for d in due] == [overdue["id"], soon["id"]]
    assert [d["minutes_left"] for d in due] == [-3, 9]


def test_receipts_group_deliveries_and_readings_by_recipient() -> None:
    found = {
        "deliveries": [
            {"recipient_id": "r1", "recipient_name": "Centro", "version": 1, "channel": "email",
             "outcome": "delivered"},
            {"recipient_id": "r2", "recipient_name": None, "version": 1, "channel": "sms",
             "outcome": "failed"},
        ],
        "receipts": [{"recipient_id": "r1", "recipient_name": "Centro", "version": 1,
                      "first_seen_at": "2026-01-01T00:00:00Z"}],
    }  # fmt: skip
    rows = liaison_receipts(found)
    assert [r["name"] for r in rows] == ["Centro", "r2"]
    assert rows[0]["seen"] == {1: "2026-01-01T00:00:00Z"}
    assert rows[1]["seen"] == {}
    assert rows[1]["sent"] == [{"version": 1, "channel": "sms", "outcome": "failed"}]


def test_phone_notice_body_and_its_errors_by_form_field() -> None:
    names = [
        "reference",
        "status",
        "operation_type",
        "window_start",
        "window_end",
        "area",
        "area_code",
        "summary",
        "field_office_name",
        "agent_name",
        "agent_phone",
        "free_text",
        "public_safety_nexus",
        "names",
        "addresses",
        "vehicles",
        "exact_locations",
    ]
    values = dict.fromkeys(names, "")
    values.update(window_start="2026-01-15T09:00", window_end="not a time", names="A\n B \n")
    body = notice_body(values, nexus=False)
    assert body["received_via"] == "phone"
    assert body["window_start"] == "2026-01-15T09:00:00-06:00"  # Madison, standard time
    assert body["window_end"] == "not a time"  # intake refuses it, next to the field
    assert body["restricted"]["names"] == ["A", "B"]
    assert body["area_code"] is None
    placed, general = errors_by_field(
        {"source.agent.phone": "bad", "restricted.names[0]": "blank", "": "window order"}
    )
    assert placed == {"agent_phone": "bad", "names": "blank"}
    assert general == ["window order"]


def test_server_sent_event_puts_every_line_in_its_own_data_field() -> None:
    assert sse_event("inbox", "<ul>\n<li>a</li>\n</ul>") == (
        "event: inbox\ndata: <ul>\ndata: <li>a</li>\ndata: </ul>\n\n"
    )
    assert sse_event("signin", "") == "event: signin\ndata: \n\n"


def test_dynamic_message_keys_of_the_new_pages_exist_in_both_languages() -> None:
    keys = [f"phone.{n}" for n in ("reference", "window_start", "window_end", "area",
            "field_office_name", "agent_name", "agent_phone")]  # fmt: skip
    keys += [f"retract.{r}" for r in ("inaccurate", "operation_cancelled", "restricted_detail",
             "superseded")]  # fmt: skip
    keys += [f"operation.{o}" for o in ("targeted_arrest", "worksite", "surveillance", "other")]
    for language in ("en", "es"):
        missing = [k for k in keys if k not in catalog(language)]
        assert not missing, (language, missing)


def test_dynamic_message_keys_of_ops_admin_and_ledger_pages_exist_in_both_languages() -> None:
    from services.common.auth import Role

    keys = ["users.done.disabled", "users.done.role", "users.not_yourself", "users.bad_role"]
    keys += ["enrolled.created", "enrolled.reset", "dlq.pick", "dlq.gone"]
    keys += [f"role.{role.value}" for role in Role]
    # rumor_control's suggestion reason codes (services/rumor_control/domain/rules.py).
    keys += [f"suggest.{code}" for code in ("notice_overlaps", "notice_cancelled",
             "place_unknown", "no_matching_notice")]  # fmt: skip
    for language in ("en", "es"):
        missing = [k for k in keys if k not in catalog(language)]
        assert not missing, (language, missing)


def test_ledger_groups_rumors_by_place_open_ones_first() -> None:
    from services.console.http.rumors import ledger_clusters

    def rumor(place: str, last: str, *, assessed: bool = False, count: int = 1) -> dict[str, Any]:
        return {
            "rumor_id": f"{place}-{last}", "area_code": place, "area": place.title(),
            "report_count": count, "last_reported_at": f"2026-11-27T{last}:00+00:00",
            "assessment": "False" if assessed else None,
        }  # fmt: skip

    clusters = ledger_clusters(
        [
            rumor("north", "10:00", assessed=True),
            rumor("south", "09:00", count=3),
            rumor("south", "11:00", assessed=True),
            rumor("east", "08:00", count=2),
        ]
    )
    # Places with rumors awaiting assessment first (newest heard first), then the rest.
    assert [c["place"] for c in clusters] == ["south", "east", "north"]
    south = clusters[0]
    assert (south["reports"], south["open"], south["area"]) == (4, 1, "South")
    # Within a place, the open rumor before the assessed one, though older.
    assert [r["rumor_id"] for r in south["rumors"]] == ["south-09:00", "south-11:00"]
