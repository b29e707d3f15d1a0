"""Router's pure rules: escalation steps, delegation windows, urgency, directory validation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.domain import (
    AlertState,
    Channels,
    Delegation,
    DirectoryDocument,
    EscalationPolicy,
    EscalationPosition,
    EscalationStep,
    Person,
    SpocDesignation,
    alert_id_for,
    delivery_id_for,
    delivery_still_wanted,
    first_position,
    holder_of_spoc,
    next_step,
    snapshot_directory,
    urgency_for,
    validate_directory,
)
from services.router.http.alerts import StateFilter

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPOC, DEPUTY, BACKUP, WATCH = (uuid.UUID(int=i) for i in (1, 2, 3, 4))


def person(pid: uuid.UUID, **channels: Any) -> Person:
    channels = channels or {"email": f"p{pid.int}@police.example"}
    return Person(id=pid, name=f"Person {pid.int}", channels=Channels(**channels))


def directory(
    *,
    steps: tuple[EscalationStep, ...] | None = None,
    repeat: int = 0,
    delegations: tuple[Delegation, ...] = (),
    people: tuple[Person, ...] | None = None,
) -> DirectoryDocument:
    return DirectoryDocument(
        people=people or (person(SPOC), person(DEPUTY), person(BACKUP), person(WATCH)),
        spoc=SpocDesignation(person_id=SPOC, delegations=delegations),
        policy=EscalationPolicy(
            steps=steps
            or (
                EscalationStep(target="spoc", wait_s=60),
                EscalationStep(target="person", person_id=BACKUP, wait_s=120),
            ),
            repeat=repeat,
        ),
    )


def leave(start_h: float, end_h: float, deputy: uuid.UUID = DEPUTY) -> Delegation:
    return Delegation(
        deputy_id=deputy,
        starts_at=T0 + timedelta(hours=start_h),
        ends_at=T0 + timedelta(hours=end_h),
    )


# --- escalation steps ---------------------------------------------------------------


def walk(document: DirectoryDocument) -> list[tuple[int, int, uuid.UUID, float]]:
    """Fire every timer in turn; (repeat, step, person, seconds since open) per notification."""
    snapshot = snapshot_directory(document, version=1, at=T0)
    outcome = first_position(snapshot, at=T0)
    assert outcome.position is not None
    seen = [(0, 0, snapshot.target(0), 0.0)]
    while outcome.position is not None:
        assert outcome.next_fire_at is not None
        fired_at = outcome.next_fire_at
        outcome = next_step(snapshot, outcome.position, fired_at=fired_at)
        if outcome.position is not None:
            p = outcome.position
            seen.append(
                (p.repeat, p.step, snapshot.target(p.step), (fired_at - T0).total_seconds())
            )
        else:
            seen.append((-1, -1, uuid.UUID(int=0), (fired_at - T0).total_seconds()))
    return seen


def test_steps_fire_in_order_then_repeat_then_exhaust() -> None:
    assert walk(directory(repeat=1)) == [
        (0, 0, SPOC, 0.0),
        (0, 1, BACKUP, 60.0),  # the SPOC's wait ran out
        (1, 0, SPOC, 180.0),  # second pass starts after the backup's wait
        (1, 1, BACKUP, 240.0),
        (-1, -1, uuid.UUID(int=0), 360.0),  # exhausted after the last wait of the last pass
    ]


def test_single_step_without_repeat_exhausts_after_its_wait() -> None:
    document = directory(steps=(EscalationStep(target="spoc", wait_s=30),))
    assert walk(document) == [(0, 0, SPOC, 0.0), (-1, -1, uuid.UUID(int=0), 30.0)]


def test_next_wait_counts_from_when_the_timer_really_fired() -> None:
    snapshot = snapshot_directory(directory(), version=1, at=T0)
    late = T0 + timedelta(minutes=30)  # the router was down for half an hour
    outcome = next_step(snapshot, EscalationPosition(0, 0), fired_at=late)
    # The backup still gets their full two minutes instead of a burst of catch-up steps.
    assert outcome.position == EscalationPosition(0, 1)
    assert outcome.next_fire_at == late + timedelta(seconds=120)


@given(
    waits=st.lists(st.integers(min_value=1, max_value=3600), min_size=1, max_size=6),
    repeat=st.integers(min_value=0, max_value=4),
)
def test_every_step_of_every_pass_fires_exactly_once(waits: list[int], repeat: int) -> None:
    steps = tuple(EscalationStep(target="spoc", wait_s=w) for w in waits)
    seen = walk(directory(steps=steps, repeat=repeat))
    notified = [(r, s) for r, s, _, _ in seen if r >= 0]
    assert notified == [(r, s) for r in range(repeat + 1) for s in range(len(waits))]
    assert seen[-1][3] == sum(waits) * (repeat + 1)  # exhaustion after every wait, once


# --- delegation windows ----------------------------------------------------------------


def test_deputy_holds_the_role_inside_the_window_only() -> None:
    spoc = SpocDesignation(person_id=SPOC, delegations=(leave(1, 3),))
    assert holder_of_spoc(spoc, T0) == (SPOC, False)
    assert holder_of_spoc(spoc, T0 + timedelta(hours=1)) == (DEPUTY, True)  # starts_at included
    assert holder_of_spoc(spoc, T0 + timedelta(hours=2, minutes=59)) == (DEPUTY, True)
    assert holder_of_spoc(spoc, T0 + timedelta(hours=3)) == (SPOC, False)  # ends_at excluded


def test_snapshot_resolves_spoc_steps_to_the_deputy_during_leave() -> None:
    document = directory(delegations=(leave(-1, 1),))
    snapshot = snapshot_directory(document, version=7, at=T0)
    assert snapshot.spoc_id == DEPUTY
    assert snapshot.designated_spoc_id == SPOC
    assert snapshot.delegated
    assert [s.person_id for s in snapshot.policy.steps] == [DEPUTY, BACKUP]
    assert snapshot.may_acknowledge(DEPUTY)
    assert not snapshot.may_acknowledge(SPOC)  # on leave and not in the chain
    assert snapshot.directory_version == 7


def test_snapshot_is_frozen_data_not_a_view_of_the_directory() -> None:
    document = directory()
    snapshot = snapshot_directory(document, version=1, at=T0)
    edited = directory(steps=(EscalationStep(target="person", person_id=WATCH, wait_s=5),))
    assert snapshot_directory(edited, version=2, at=T0) != snapshot
    assert [s.person_id for s in snapshot.policy.steps] == [SPOC, BACKUP]


# --- urgency -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts_in", "ends_in", "expected"),
    [
        (timedelta(minutes=30), timedelta(hours=3), "high"),
        (timedelta(hours=2), timedelta(hours=3), "high"),  # exactly at the horizon
        (timedelta(hours=2, seconds=1), timedelta(hours=5), "normal"),
        (timedelta(hours=-1), timedelta(hours=1), "high"),  # under way
        (timedelta(hours=-3), timedelta(hours=-1), "normal"),  # over
        (timedelta(days=3), timedelta(days=3, hours=4), "normal"),
    ],
)
def test_urgency_is_high_when_the_operation_starts_within_the_horizon(
    starts_in: timedelta, ends_in: timedelta, expected: str
) -> None:
    assert (
        urgency_for(
            window_start=T0 + starts_in,
            window_end=T0 + ends_in,
            now=T0,
            horizon=timedelta(hours=2),
        )
        == expected
    )


# --- directory validation ---------------------------------------------------------------


def messages(document: DirectoryDocument) -> dict[str, str]:
    return {e.path: e.message for e in validate_directory(document)}


def test_a_complete_directory_is_valid() -> None:
    assert validate_directory(directory(delegations=(leave(1, 2), leave(5, 6)))) == []


def test_unknown_spoc_and_unreachable_people_are_refused() -> None:
    document = DirectoryDocument(
        people=(person(SPOC, phone="+1 555 0100"), person(BACKUP)),
        spoc=SpocDesignation(person_id=SPOC),
        policy=EscalationPolicy(
            steps=(
                EscalationStep(target="spoc", wait_s=60),
                EscalationStep(target="person", person_id=WATCH, wait_s=60),
            )
        ),
    )
    found = messages(document)
    # a phone (for people to call) is not enough
    assert found["spoc.person_id"] == "the SPOC has no webhook, e-mail or SMS number"
    assert found["policy.steps[1].person_id"] == "names no person in the directory"


def test_a_policy_with_no_reachable_recipient_is_refused() -> None:
    document = DirectoryDocument(
        people=(person(SPOC, phone="+1"),),
        spoc=SpocDesignation(person_id=SPOC),
        policy=EscalationPolicy(steps=(EscalationStep(target="spoc", wait_s=60),)),
    )
    assert validate_directory(document), "nobody can be reached: must be refused"


def test_delegation_rules() -> None:
    document = directory(
        delegations=(
            leave(1, 3),
            leave(2, 4, deputy=BACKUP),  # overlaps the first
            leave(6, 5),  # ends before it starts
            leave(7, 8, deputy=SPOC),  # the SPOC cannot stand in for themself
            leave(9, 10, deputy=uuid.UUID(int=99)),
        )
    )
    found = messages(document)
    assert "overlaps spoc.delegations[0]" in found["spoc.delegations[1]"]
    assert found["spoc.delegations[2].ends_at"] == "must be after starts_at"
    assert found["spoc.delegations[3].deputy_id"] == "the SPOC cannot deputise for self"
    assert found["spoc.delegations[4].deputy_id"] == "names no person in the directory"


def test_step_target_rules_and_duplicate_ids() -> None:
    document = directory(
        people=(person(SPOC), person(SPOC, email="twin@police.example")),
        steps=(
            EscalationStep(target="spoc", person_id=BACKUP, wait_s=60),
            EscalationStep(target="person", wait_s=60),
        ),
    )
    found = messages(document)
    assert found["people[1].id"] == "duplicate person id"
    assert found["policy.steps[0].person_id"] == "a spoc step names no person"
    assert found["policy.steps[1].person_id"] == "a person step needs person_id"


@pytest.mark.parametrize(
    "bad",
    [
        {"webhook_url": "ftp://example.org/x"},
        {"webhook_url": "javascript:alert(1)"},
        {"email": "not-an-address"},
        {"email": "a@b"},
    ],
)
def test_channel_addresses_are_checked(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
        Channels(**bad)


# --- ids and delivery rules -------------------------------------------------------------


def test_ids_are_deterministic() -> None:
    notice = uuid.uuid4()
    assert alert_id_for(notice) == alert_id_for(notice)
    assert alert_id_for(notice) != alert_id_for(uuid.uuid4())
    base: dict[str, Any] = {
        "alert_id": alert_id_for(notice),
        "notice_version": 1,
        "recipient_id": SPOC,
        "channel": "email",
        "purpose": "alert",
        "position": EscalationPosition(0, 0),
    }
    assert delivery_id_for(**base) == delivery_id_for(**base)
    for change in (
        {"notice_version": 2},
        {"channel": "webhook"},
        {"purpose": "escalation"},
        {"position": EscalationPosition(1, 0)},
        {"recipient_id": BACKUP},
    ):
        assert delivery_id_for(**{**base, **change}) != delivery_id_for(**base)


@pytest.mark.parametrize(
    ("state", "alert_version", "request_version", "purpose", "wanted"),
    [
        ("triggered", 1, 1, "alert", True),
        ("escalated", 1, 1, "escalation", True),
        ("unacknowledged_exhausted", 1, 1, "escalation", True),
        ("acknowledged", 1, 1, "escalation", False),  # ack stops queued escalations too
        ("triggered", 2, 1, "alert", False),  # superseded by an update
        ("resolved", 2, 2, "cancel", True),  # a cancellation always goes out
        ("resolved", 1, 1, "alert", False),
    ],
)
def test_delivery_still_wanted(
    state: str, alert_version: int, request_version: int, purpose: str, wanted: bool
) -> None:
    assert (
        delivery_still_wanted(
            state=state,
            alert_version=alert_version,
            request_version=request_version,
            purpose=purpose,
        )
        is wanted
    )


def test_the_alert_list_filter_names_every_state_and_open() -> None:
    """`GET /v1/alerts?state=` is an enum in OpenAPI: it must follow the states it filters."""
    assert set(get_args(StateFilter)) == {*get_args(AlertState), "open"}
