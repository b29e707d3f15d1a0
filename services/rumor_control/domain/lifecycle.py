"""How bulletins never contradict each other: one live bulletin per rumor (and per notice
standby), drafts that may no longer be approved, and bulletins vetters must look at again.

published -> superseded: another bulletin of the same rumor was approved; it is that chain's
CAP Update (it references every earlier message), so feeds, liaisons and the radio desk
read it as an update, and this one leaves the lists and feeds.
drafted -> withdrawn: a newer assessment replaced the draft, or its notice was cancelled; a
withdrawn draft cannot be approved.
published -> published (flagged): its notice was cancelled; a suggested correction is
drafted as its next version (an Update) for a vetter to approve, edit or reject.

Pure, like `bulletins`: applied with one `uow.bulletins.apply(transition)`. None of these
steps emits an event: the contract's events already say it (the superseding bulletin's
`bulletin.published` is an Update referencing this one; a withdrawn draft was never
released), and the timeline records who or what caused each step.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import assert_never

from schemas.base import EventData, MsgType
from services.rumor_control.domain.bulletins import (
    BulletinTransition,
    BulletinView,
    Checked,
    drafted_event,
    timeline_step,
)
from services.rumor_control.domain.records import Texts, VersionRow
from services.rumor_control.domain.rules import Actor, VettingError

__all__ = [
    "NOTICE_CANCELLED",
    "SUPERSEDED",
    "WITHDRAWN_BY_ASSESSMENT",
    "expiry",
    "flag_for_review",
    "is_live",
    "supersede",
    "withdraw",
]

# Reason codes (timeline details, flags and rejected pending versions).
SUPERSEDED = "vetting.superseded"
WITHDRAWN_BY_ASSESSMENT = "vetting.replaced_by_assessment"
NOTICE_CANCELLED = "notice.cancelled"


def is_live(view: BulletinView) -> bool:
    """Published and in force: what liaisons, the radio desk and the feeds read now."""
    state = view.bulletin.state
    match state:
        case "published":
            return True
        case "drafted" | "rejected" | "superseded" | "retracted" | "withdrawn":
            return False
        case _:
            assert_never(state)


def _settled_pending(latest: VersionRow, actor: Actor | None, at: datetime) -> VersionRow:
    """A pending update of a bulletin that leaves the chain: rejected, it is moot now."""
    return replace(
        latest, state="rejected", rejected_by=None if actor is None else actor.id,
        rejected_at=at, reason_codes=(SUPERSEDED,),
    )  # fmt: skip


def supersede(
    view: BulletinView, *, by: uuid.UUID, version: int, actor: Actor, at: datetime
) -> BulletinTransition:
    """published -> superseded: `by` (its version `version`) is the chain's newer word."""
    if not is_live(view):
        raise VettingError("vetting.not_published", "only a live bulletin is superseded")
    bulletin, latest = view.bulletin, view.latest
    updated = (_settled_pending(latest, actor, at),) if latest.state == "drafted" else ()
    changed = replace(bulletin, state="superseded", superseded_by=by, flags=(), updated_at=at)
    detail = {"superseded_by": str(by), "by_version": version}
    return BulletinTransition(
        bulletin.bulletin_id,
        bulletin=changed,
        updated=updated,
        timeline=(timeline_step(bulletin, latest.version, "superseded", actor, at, **detail),),
    )


def withdraw(
    view: BulletinView, *, reason_code: str, actor: Actor | None, at: datetime
) -> BulletinTransition:
    """drafted -> withdrawn: a draft never published that must not be approved any more."""
    bulletin, latest = view.bulletin, view.latest
    if bulletin.state != "drafted" or latest.state != "drafted":
        raise VettingError("vetting.not_a_draft", f"the bulletin is {bulletin.state}")
    version = replace(latest, state="withdrawn", reason_codes=(reason_code,))
    changed = replace(bulletin, state="withdrawn", flags=(), updated_at=at)
    return BulletinTransition(
        bulletin.bulletin_id,
        bulletin=changed,
        updated=(version,),
        timeline=(
            timeline_step(
                bulletin, latest.version, "withdrawn", actor, at, reason_code=reason_code
            ),
        ),
    )


def flag_for_review(
    view: BulletinView,
    *,
    flag: str,
    suggestion: tuple[Texts, Checked] | None,
    at: datetime,
) -> BulletinTransition | None:
    """Ask vetters to look at a bulletin again; for a live one without a pending update,
    draft `suggestion` as its next version (an automatic draft: any vetter may approve it).
    None when it is already flagged so (a redelivered event changes nothing)."""
    bulletin, latest = view.bulletin, view.latest
    if flag in bulletin.flags:
        return None
    changed = replace(bulletin, flags=(*bulletin.flags, flag), updated_at=at)
    inserted: tuple[VersionRow, ...] = ()
    events: tuple[EventData, ...] = ()
    blocked: tuple[str, ...] = ()
    if suggestion is not None and is_live(view) and latest.state != "drafted":
        texts, checked = suggestion
        msg_type: MsgType = "Update"
        version = VersionRow(
            bulletin.bulletin_id, latest.version + 1, msg_type, view.chain_references(),
            "drafted", 1, texts, checked.findings, checked.blocked, latest.channels, {}, None,
            None, at,
        )  # fmt: skip
        changed = replace(changed, current_version=version.version)
        inserted, blocked = (version,), checked.blocked
        events = (drafted_event(changed, version, None, at),)
    detail = {"flag": flag, "suggested_version": inserted[0].version if inserted else None}
    return BulletinTransition(
        bulletin.bulletin_id,
        bulletin=changed,
        inserted=inserted,
        timeline=(timeline_step(bulletin, latest.version, "flagged", None, at, **detail),),
        events=events,
        blocked=blocked,
    )


def expiry(
    *, assessment_expires_at: datetime | None, announced_end: datetime | None, at: datetime
) -> datetime | None:
    """When a Rumor/Fact bulletin stops being current: its assessment's expiry, but never
    before the end of the window it announces (a Confirmed bulletin stays current while
    the operation it confirms is under way)."""
    ends = [moment for moment in (assessment_expires_at, announced_end) if moment is not None]
    latest = max(ends, default=None)
    return latest if latest is not None and latest > at else None
