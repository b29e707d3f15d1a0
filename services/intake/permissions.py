"""Who may do what with a notice, and who sees which fields: the one place that decides.

Read the two tables; routes and use cases only ask them.

    action           roles
    submit           field_office
    update, cancel   field_office (its own notices only)
    read             field_office (its own notices only), contact, ops
    read_restricted  contact (source and restricted detail; every read audited), and only
                     a contact whose subject is a person in the directory in force, or
                     whose token the admin issued with the explicit grant
    verify_audit     ops (the audit chain's verification result; no entry's content)

Everyone else who may read sees releasable fields only, and the view they get has no
field that could hold restricted detail (see http/views.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import assert_never

from services.common.auth import Principal, Role
from services.intake.domain import RestrictedDetail

__all__ = [
    "OWN_NOTICES_ONLY",
    "PERMISSIONS",
    "Access",
    "Action",
    "access_for",
    "allowed",
    "depends_on_directory",
    "roles_for",
    "sees_only_own",
    "visible_detail",
]


class Action(StrEnum):
    """What a caller can ask of intake."""

    SUBMIT = "submit"
    UPDATE = "update"
    CANCEL = "cancel"
    READ = "read"
    READ_RESTRICTED = "read_restricted"
    VERIFY_AUDIT = "verify_audit"


PERMISSIONS: Mapping[Action, frozenset[Role]] = {
    Action.SUBMIT: frozenset({Role.FIELD_OFFICE}),
    Action.UPDATE: frozenset({Role.FIELD_OFFICE}),
    Action.CANCEL: frozenset({Role.FIELD_OFFICE}),
    Action.READ: frozenset({Role.FIELD_OFFICE, Role.CONTACT, Role.OPS}),
    # The SPOC and backups: the only readers of who reported what about whom.
    Action.READ_RESTRICTED: frozenset({Role.CONTACT}),
    Action.VERIFY_AUDIT: frozenset({Role.OPS}),
}

# Roles that see (and change) only the notices their own field office recorded; another
# office's notice answers exactly like a missing one, so ids cannot be probed.
OWN_NOTICES_ONLY: frozenset[Role] = frozenset({Role.FIELD_OFFICE})


class Access(StrEnum):
    """How much of a notice a caller may see."""

    RESTRICTED = "restricted"  # releasable fields, source and restricted detail (audited)
    METADATA = "metadata"  # releasable fields only; restricted fields absent


def allowed(role: Role, action: Action) -> bool:
    """Whether `role` may perform `action`."""
    return role in PERMISSIONS[action]


def roles_for(action: Action) -> tuple[Role, ...]:
    """The roles allowed `action`, for `require_roles` on a route (stable order)."""
    return tuple(role for role in Role if role in PERMISSIONS[action])


def depends_on_directory(principal: Principal) -> bool:
    """Whether `principal`'s access turns on its subject being in the directory in force.

    Only then is the directory worth looking up: other roles never read restricted detail,
    and a granted contact reads it whatever the directory says.
    """
    return allowed(principal.role, Action.READ_RESTRICTED) and not principal.restricted_grant


def access_for(principal: Principal, *, in_directory: bool) -> Access:
    """The fields `principal` sees: restricted detail only where the table allows its role,
    and then only for a person in the directory in force or a token the admin granted.

    A `contact` token is not enough on its own: any holder of one (a departed backup, a
    token issued for testing) would otherwise read every notice's source and targets.
    """
    if not allowed(principal.role, Action.READ_RESTRICTED):
        return Access.METADATA
    if in_directory or principal.restricted_grant:
        return Access.RESTRICTED
    return Access.METADATA


def sees_only_own(role: Role) -> bool:
    """Whether `role` is limited to its own field office's notices."""
    return role in OWN_NOTICES_ONLY


def visible_detail(access: Access, detail: RestrictedDetail | None) -> RestrictedDetail | None:
    """The restricted detail a caller with `access` may be shown: all of it, or nothing."""
    match access:
        case Access.RESTRICTED:
            return detail
        case Access.METADATA:
            return None
        case _:
            assert_never(access)
