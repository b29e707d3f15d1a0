"""Who may do what in router, and what each role sees: the only place this is decided.

Routes ask `allowed(action)` for their dependency; views ask `visible_detail` what a
timeline entry shows the caller. Check the table below at a glance.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from enum import StrEnum
from typing import Any

from services.common.auth import Principal, Role, require_roles

__all__ = ["ALLOWED", "Action", "allowed", "may", "visible_detail"]


class Action(StrEnum):
    """Something a caller does through router's API."""

    READ_ALERTS = "read_alerts"  # list and read alerts and timelines
    ACKNOWLEDGE = "acknowledge"  # acknowledge through the API (links carry their own proof)
    READ_COMMENTS = "read_comments"  # read acknowledgement comments (free text)
    MANAGE_DIRECTORY = "manage_directory"  # read and replace the directory
    OPERATE_DLQ = "operate_dlq"  # list and replay the dead-letter topic (every service's)


ALLOWED: Mapping[Action, frozenset[Role]] = {
    Action.READ_ALERTS: frozenset({Role.OPS, Role.CONTACT, Role.ADMIN}),
    Action.ACKNOWLEDGE: frozenset({Role.CONTACT}),
    Action.READ_COMMENTS: frozenset({Role.CONTACT, Role.ADMIN}),
    Action.MANAGE_DIRECTORY: frozenset({Role.ADMIN}),
    Action.OPERATE_DLQ: frozenset({Role.OPS}),
}


def may(role: Role, action: Action) -> bool:
    """Whether `role` may do `action`."""
    return role in ALLOWED[action]


def allowed(action: Action) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """FastAPI dependency: the caller's principal if its role may do `action`, else 403."""
    return require_roles(*sorted(ALLOWED[action]))


def visible_detail(detail: Mapping[str, Any], role: Role) -> dict[str, Any]:
    """A timeline entry's detail as `role` may see it."""
    shown = dict(detail)
    if "comment" in shown and not may(role, Action.READ_COMMENTS):
        # Comments are free text a contact wrote; ops see that there was one, not what.
        shown["comment"] = "[withheld]"
    return shown
