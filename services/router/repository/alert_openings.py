"""What an alert's opening statement binds, built before it is sent (PostgreSQL: the
values of `open_alert_direct`; SQLite: its alert and directory values)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.delivery.accepting import PreparedAccept
from services.common.outbox import Taker
from services.router.domain import AlertRecord, Transition
from services.router.repository.alert_rows import alert_values, timeline_values

__all__ = ["PendingOpening", "open_params", "opening_entries"]


@dataclass(frozen=True)
class PendingOpening:
    """An opening's statement values, and what finishing it takes once it ran."""

    alert: AlertRecord
    params: dict[str, object]
    taker: Taker | None
    queued: list[dict[str, object]]
    prepared: PreparedAccept | None


def open_params(
    transition: Transition, directory_version: int, directory_digest: str, *, postgres: bool
) -> dict[str, object]:
    """The opening statement's alert and directory values (on PostgreSQL the JSON columns
    as their text, which its statement binds as text: `open_alert_direct`)."""
    if transition.before is not None or transition.guard is not None:
        raise ValueError("open takes the transition of a new alert")
    alert = alert_values(transition.after, json_text=postgres)
    return {
        "directory_version": directory_version,
        "directory_digest": directory_digest,
        **{f"a_{name}": value for name, value in alert.items()},
    }


def opening_entries(transition: Transition) -> list[dict[str, object]]:
    """The rows of a transition's timeline entries."""
    return [timeline_values(transition.after.id, entry) for entry in transition.timeline]
