"""The permissions table: who may do what, and which text each role reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from schemas.base import Status
from services.common.auth import Role
from services.rumor_control.domain import BulletinRow, BulletinState
from services.rumor_control.permissions import (
    ALLOWED,
    Action,
    bulletin_texts,
    lists_drills,
    may_read,
    sees_reports,
    visible_bulletin_states,
)


def test_only_vetters_assess_and_vet() -> None:
    assert ALLOWED[Action.ASSESS_RUMOR] == {Role.VETTER}
    assert ALLOWED[Action.VET_BULLETIN] == {Role.VETTER}


def test_liaisons_report_and_read_bulletins_but_not_the_ledger() -> None:
    assert Role.LIAISON in ALLOWED[Action.REPORT_RUMOR]
    assert Role.LIAISON in ALLOWED[Action.READ_BULLETINS]
    assert Role.LIAISON not in ALLOWED[Action.READ_LEDGER]


@pytest.mark.parametrize(
    ("role", "texts", "reports", "states", "drills"),
    [
        (Role.VETTER, "draft", True, None, True),
        # The OpenAPI promise: liaisons see published (current) bulletins only, no drills.
        (Role.LIAISON, "published", False, ("published",), False),
        (Role.OPS, "none", False, None, True),
        (Role.ADMIN, "none", False, None, True),
    ],
)
def test_what_each_role_sees(
    role: Role, texts: str, reports: bool, states: tuple[str, ...] | None, drills: bool
) -> None:
    assert bulletin_texts(role) == texts
    assert sees_reports(role) is reports
    assert visible_bulletin_states(role) == states
    assert lists_drills(role) is drills


def _bulletin(state: BulletinState, status: Status = "Actual") -> BulletinRow:
    at = datetime(2026, 3, 3, tzinfo=UTC)
    return BulletinRow(
        uuid.uuid4(), "rumor_fact", status, state, 1, "rumor_fact", uuid.uuid4(), (), None,
        None, at, at,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("state", "status", "readable"),
    [
        ("published", "Actual", True),
        ("published", "Exercise", False),
        ("superseded", "Actual", False),
        ("retracted", "Actual", False),
        ("withdrawn", "Actual", False),
        ("drafted", "Actual", False),
    ],
)
def test_a_liaison_reads_only_current_real_bulletins(
    state: BulletinState, status: Status, readable: bool
) -> None:
    assert may_read(Role.LIAISON, _bulletin(state, status)) is readable
    assert may_read(Role.VETTER, _bulletin(state, status)) is True


def test_every_action_has_a_rule() -> None:
    assert set(ALLOWED) == set(Action)
