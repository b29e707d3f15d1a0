"""What a transition changes in its alert's row, and what can be written together (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import assert_never

import sqlalchemy as sa

from services.router.domain import EscalationGuard, Transition, VersionGuard
from services.router.repository.alert_rows import COLUMNS, column_value
from services.router.tables import alerts

__all__ = ["changed_columns", "foldable", "guarded", "plain"]


def changed_columns(transition: Transition) -> dict[str, object]:
    """Every column whose value the transition changes (all of them for a new alert)."""
    before, after = transition.before, transition.after
    if before is None:
        return {name: column_value(getattr(after, name)) for name in COLUMNS}
    changes: dict[str, object] = {}
    for name in COLUMNS:
        old, new = getattr(before, name), getattr(after, name)
        # `replace` keeps unchanged fields as the same objects: no deep comparison of the
        # content and snapshot models for every column of every transition.
        if old is not new and old != new:
            changes[name] = column_value(new)
    return changes


def plain(changes: dict[str, object]) -> bool:
    """Whether some column changes and every changed value is a plain one (one UPDATE
    can set it for many rows)."""
    return bool(changes) and all(
        isinstance(v, str | int | datetime | None) for v in changes.values()
    )


def guarded(transition: Transition) -> list[sa.ColumnElement[bool]]:
    guard = transition.guard
    where: list[sa.ColumnElement[bool]] = [alerts.c.id == str(transition.after.id)]
    match guard:
        case None:
            pass
        case EscalationGuard(states=states, escalation_id=escalation_id):
            where.append(alerts.c.state.in_(sorted(states)))
            where.append(
                alerts.c.active_escalation_id.is_(None)
                if escalation_id is None
                else alerts.c.active_escalation_id == escalation_id
            )
        case VersionGuard(states=states, notice_version=version):
            where.append(alerts.c.state.in_(sorted(states)))
            where.append(alerts.c.notice_version == version)
        case _:
            assert_never(guard)
    return where


def foldable(
    transitions: Sequence[Transition], *, versioned: list[int], notes: list[int], others: int
) -> list[int]:
    """The notes whose entries and events can go in the statement of the version-guarded
    change.

    A batch of delivery outcomes is row changes without entries or events of their own
    (triggered -> delivered) and notes (entries and events only, no guard): the notes'
    are written whatever the change does, so they need not wait for it; with no change
    at all (every alert marked already) they still go in one statement. Anything else
    in the batch keeps the order of one INSERT each after the changes.
    """
    if others or not notes or len(versioned) + len(notes) != len(transitions):
        return []
    if any(transitions[i].timeline or transitions[i].events for i in versioned):
        return []
    return [i for i in notes if transitions[i].timeline or transitions[i].events]
