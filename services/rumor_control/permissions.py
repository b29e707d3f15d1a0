"""Who may do what in rumor control, and what each role sees: the one place that decides.

Routes ask `allowed(Action)` for their dependency; presenters ask `bulletin_texts(role)`,
`sees_reports(role)`, `visible_bulletin_states(role)`, `lists_drills(role)` and
`may_read(role, bulletin)` what to show. A vetter sees drafts with their guardrail findings
and the claims as heard; a liaison sees only the current published text of real bulletins
(never a draft, a superseded or retracted bulletin, or a drill); ops sees metadata (ids,
states, reason codes, timelines), never text or claims.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any, Literal, assert_never

from schemas.base import is_drill
from services.common.auth import Principal, Role, require_roles
from services.rumor_control.domain import BulletinRow, BulletinState

__all__ = [
    "ALLOWED",
    "Action",
    "TextView",
    "allowed",
    "bulletin_texts",
    "lists_drills",
    "may_read",
    "sees_reports",
    "visible_bulletin_states",
]


class Action(StrEnum):
    """What a caller asks rumor control to do."""

    REPORT_RUMOR = "report_rumor"
    READ_LEDGER = "read_ledger"  # rumors, their timelines, bulletin timelines and deliveries
    ASSESS_RUMOR = "assess_rumor"
    READ_BULLETINS = "read_bulletins"  # the list, one bulletin, the radio script
    VET_BULLETIN = "vet_bulletin"  # edit, sign off, approve, reject, retract


ALLOWED: dict[Action, frozenset[Role]] = {
    Action.REPORT_RUMOR: frozenset({Role.LIAISON, Role.VETTER}),
    Action.READ_LEDGER: frozenset({Role.VETTER, Role.OPS}),
    Action.ASSESS_RUMOR: frozenset({Role.VETTER}),
    Action.READ_BULLETINS: frozenset({Role.VETTER, Role.OPS, Role.LIAISON}),
    Action.VET_BULLETIN: frozenset({Role.VETTER}),
}

# Which text of a bulletin a role reads: the latest draft, the last published version, none.
TextView = Literal["draft", "published", "none"]
_BULLETIN_TEXTS: dict[Role, TextView] = {
    Role.VETTER: "draft",
    Role.LIAISON: "published",
    Role.OPS: "none",
}
# The claims as heard (reports) are for vetters only.
_SEES_REPORTS: frozenset[Role] = frozenset({Role.VETTER})
# Liaisons list only what is published now (not superseded, retracted or withdrawn) and
# never a drill: drills stay inside the department. The others list every bulletin.
_PUBLIC_STATES: tuple[BulletinState, ...] = ("published",)


def allowed(action: Action) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """The FastAPI dependency admitting the roles `action` allows (403 for the others)."""
    # Sorted so the dependency is the same whatever the set's iteration order.
    return require_roles(*sorted(ALLOWED[action], key=lambda role: role.value))


def bulletin_texts(role: Role) -> TextView:
    """Which text of a bulletin `role` reads (roles without bulletin access read none)."""
    return _BULLETIN_TEXTS.get(role, "none")


def sees_reports(role: Role) -> bool:
    """Whether `role` reads the reports of a rumor (the claims as heard)."""
    return role in _SEES_REPORTS


def visible_bulletin_states(role: Role) -> tuple[BulletinState, ...] | None:
    """The bulletin states `role` lists; None: every state."""
    view = bulletin_texts(role)
    match view:
        case "published":
            return _PUBLIC_STATES
        case "draft" | "none":
            return None
        case _:
            assert_never(view)


def lists_drills(role: Role) -> bool:
    """Whether `role` lists and reads drill bulletins (liaisons never do)."""
    view = bulletin_texts(role)
    match view:
        case "published":
            return False
        case "draft" | "none":
            return True
        case _:
            assert_never(view)


def may_read(role: Role, bulletin: BulletinRow) -> bool:
    """Whether `role` may read this bulletin at all (the same rule as its list)."""
    states = visible_bulletin_states(role)
    if states is not None and bulletin.state not in states:
        return False
    return lists_drills(role) or not is_drill(bulletin.status)
