"""The permissions table: who may do what, and who sees restricted detail."""

from __future__ import annotations

from services.common.auth import Role
from services.intake.domain import RestrictedDetail
from services.intake.permissions import (
    PERMISSIONS,
    Access,
    Action,
    access_for,
    allowed,
    roles_for,
    sees_only_own,
    visible_detail,
)

DETAIL = RestrictedDetail(
    field_office_id="fo-sf",
    field_office_name="San Francisco ERO",
    agent_name="Dana Whitlock",
    recorded_by="SF field office system",
)


def test_only_contact_reads_restricted_detail() -> None:
    assert access_for(Role.CONTACT) is Access.RESTRICTED
    for role in (Role.FIELD_OFFICE, Role.OPS, Role.VETTER, Role.LIAISON, Role.ADMIN):
        assert access_for(role) is Access.METADATA


def test_the_table_as_the_brief_states_it() -> None:
    assert roles_for(Action.SUBMIT) == (Role.FIELD_OFFICE,)
    assert roles_for(Action.UPDATE) == roles_for(Action.CANCEL) == (Role.FIELD_OFFICE,)
    assert set(roles_for(Action.READ)) == {Role.FIELD_OFFICE, Role.CONTACT, Role.OPS}
    assert not any(
        allowed(role, action)
        for role in (Role.VETTER, Role.LIAISON, Role.ADMIN)
        for action in Action
    )
    assert set(PERMISSIONS) == set(Action)  # every action is decided here


def test_field_offices_see_only_their_own_notices() -> None:
    assert sees_only_own(Role.FIELD_OFFICE)
    assert not sees_only_own(Role.CONTACT)
    assert not sees_only_own(Role.OPS)


def test_visible_detail_filters_by_access() -> None:
    assert visible_detail(Access.RESTRICTED, DETAIL) is DETAIL
    assert visible_detail(Access.METADATA, DETAIL) is None
