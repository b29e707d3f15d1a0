"""The permissions table: who may do what, and who sees restricted detail."""

from __future__ import annotations

import dataclasses

from services.common.auth import Principal, Role
from services.intake.domain import RestrictedDetail
from services.intake.permissions import (
    PERMISSIONS,
    Access,
    Action,
    access_for,
    allowed,
    depends_on_directory,
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


CONTACT = Principal(token_id="t-c", name="SPOC", role=Role.CONTACT, subject="person-1")


def test_only_a_contact_in_the_directory_or_granted_reads_restricted_detail() -> None:
    assert access_for(CONTACT, in_directory=True) is Access.RESTRICTED
    # A contact token alone is not enough: its subject must be a person in the directory...
    assert access_for(CONTACT, in_directory=False) is Access.METADATA
    # ...or the admin granted it explicitly.
    granted = dataclasses.replace(CONTACT, restricted_grant=True)
    assert access_for(granted, in_directory=False) is Access.RESTRICTED
    assert depends_on_directory(CONTACT)
    assert not depends_on_directory(granted)
    for role in (Role.FIELD_OFFICE, Role.OPS, Role.VETTER, Role.LIAISON, Role.ADMIN):
        other = dataclasses.replace(CONTACT, role=role, restricted_grant=True)
        # Neither the directory nor a grant gives another role restricted detail.
        assert access_for(other, in_directory=True) is Access.METADATA
        assert not depends_on_directory(other)


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
