"""The permissions table: who may do what, and which text each role reads."""

from __future__ import annotations

import pytest

from services.common.auth import Role
from services.rumor_control.permissions import (
    ALLOWED,
    Action,
    bulletin_texts,
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
    ("role", "texts", "reports", "states"),
    [
        (Role.VETTER, "draft", True, None),
        (Role.LIAISON, "published", False, ("published", "retracted")),
        (Role.OPS, "none", False, None),
        (Role.ADMIN, "none", False, None),
    ],
)
def test_what_each_role_sees(
    role: Role, texts: str, reports: bool, states: tuple[str, ...] | None
) -> None:
    assert bulletin_texts(role) == texts
    assert sees_reports(role) is reports
    assert visible_bulletin_states(role) == states


def test_every_action_has_a_rule() -> None:
    assert set(ALLOWED) == set(Action)
