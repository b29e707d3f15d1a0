"""What the console offers each role: its home page and navigation. The only such table.

This decides what the console SHOWS, never what a person may do: every read and action
goes to a service's API with the person's own token, and the service's permissions.py
decides (a vetter asking for an alert gets router's 403, whatever the console shows).
"""

from __future__ import annotations

from collections.abc import Mapping

from services.common.auth import Role

__all__ = [
    "HOME",
    "NAV",
    "may_acknowledge",
    "may_manage_users",
    "may_operate",
    "may_record_notice",
    "may_vet",
    "nav_for",
]

# (path, message key) of each page a role's navigation lists.
_ALERTS = ("/alerts", "nav.alerts")
_BULLETINS = ("/bulletins", "nav.bulletins")
_REPORT = ("/rumors/new", "nav.report")
_LEDGER = ("/rumors", "nav.ledger")
_OPS = ("/ops", "nav.ops")
_DIRECTORY = ("/admin/directory", "nav.directory")
_USERS = ("/admin/users", "nav.users")
_PHONE_NOTICE = ("/notices/new", "nav.phone_notice")

NAV: Mapping[Role, tuple[tuple[str, str], ...]] = {
    Role.CONTACT: (_ALERTS,),
    Role.VETTER: (_BULLETINS, _LEDGER, _REPORT),
    Role.LIAISON: (_REPORT,),
    Role.OPS: (_OPS, _ALERTS, _LEDGER, _BULLETINS),
    Role.ADMIN: (_OPS, _ALERTS, _DIRECTORY, _USERS),
    # Intake lets only field offices submit notices: the SPOC's staff record a notice
    # taken by phone with a field-office account (see http/notices.py).
    Role.FIELD_OFFICE: (_PHONE_NOTICE,),
}

HOME: Mapping[Role, str] = {
    Role.CONTACT: "/alerts",
    Role.VETTER: "/bulletins",
    Role.LIAISON: "/rumors/new",
    Role.OPS: "/ops",
    Role.ADMIN: "/ops",
    Role.FIELD_OFFICE: "/notices/new",
}


def nav_for(role: Role) -> tuple[tuple[str, str], ...]:
    """The navigation entries of `role`."""
    return NAV[role]


def may_acknowledge(role: Role) -> bool:
    """Whether the alert page shows the acknowledgement form (router decides on submit)."""
    return role is Role.CONTACT


def may_vet(role: Role) -> bool:
    """Whether bulletin pages show the vetting forms (rumor_control decides on submit)."""
    return role is Role.VETTER


def may_record_notice(role: Role) -> bool:
    """Whether the phone-notice form is offered (intake allows field offices to submit)."""
    return role is Role.FIELD_OFFICE


def may_operate(role: Role) -> bool:
    """Whether the ops board offers the dead letters and the audit check (ops-only APIs)."""
    return role is Role.OPS


def may_manage_users(role: Role) -> bool:
    """Whether the person may create, disable, reset and re-role console accounts.

    Unlike everything above, this one the console ENFORCES: it owns its accounts, and no
    service's API stands behind these pages.
    """
    return role is Role.ADMIN
