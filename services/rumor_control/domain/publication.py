"""Bulletin transitions that end a draft's or a bulletin's course: reject and retract.

drafted -> rejected; published -> retracted (a Cancel version, published at once). Pure,
like `bulletins`: applied with one `uow.bulletins.apply(transition)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from schemas.bulletins import BulletinRejected, BulletinRetracted
from services.rumor_control.domain.bulletins import (
    BulletinTransition,
    BulletinView,
    event_header,
    timeline_step,
)
from services.rumor_control.domain.records import Texts, VersionRow
from services.rumor_control.domain.rules import Actor, VettingError

__all__ = ["SUPERSEDED", "reject", "retract", "retracted_version"]

# Why a pending update is rejected when its bulletin is retracted.
SUPERSEDED = "vetting.superseded_by_retraction"


def reject(
    view: BulletinView,
    *,
    actor: Actor,
    reason_codes: Sequence[str],
    comment: str | None,
    at: datetime,
) -> BulletinTransition:
    """drafted -> rejected; a rejected update leaves the published version in force."""
    latest = view.latest
    if latest.state != "drafted":
        raise VettingError("vetting.not_a_draft", f"the current version is {latest.state}")
    codes = tuple(sorted(set(reason_codes)))
    version = replace(
        latest, state="rejected", rejected_by=actor.id, rejected_at=at, reason_codes=codes,
        vetter_comment=comment,
    )  # fmt: skip
    bulletin = view.bulletin
    # A rejected draft rejects the bulletin; a rejected update only settles its flags.
    changed = replace(bulletin, state="rejected" if bulletin.state == "drafted" else
                      bulletin.state, flags=(), updated_at=at)  # fmt: skip
    return BulletinTransition(
        bulletin.bulletin_id,
        bulletin=changed,
        updated=(version,),
        timeline=(
            timeline_step(
                bulletin, version.version, "rejected", actor, at, reason_codes=list(codes)
            ),
        ),
        events=(
            BulletinRejected(
                **event_header(bulletin, version),
                rejected_by=actor.id,
                reason_codes=codes,
                rejected_at=at,
            ),
        ),
    )


def retracted_version(view: BulletinView) -> tuple[VersionRow, int]:
    """The published version a retraction withdraws, and the number of the Cancel."""
    withdrawn = view.last_published
    if view.bulletin.state != "published" or withdrawn is None:
        raise VettingError(
            "vetting.not_published",
            f"only a published bulletin is retracted ({view.bulletin.state})",
        )
    return withdrawn, view.latest.version + 1


def retract(
    view: BulletinView,
    *,
    actor: Actor,
    reason_code: str,
    texts: Texts,
    deliveries_requested: int,
    at: datetime,
) -> BulletinTransition:
    """published -> retracted: a Cancel version, published at once, and its correction."""
    withdrawn, number = retracted_version(view)
    bulletin, latest = view.bulletin, view.latest
    updated: tuple[VersionRow, ...] = ()
    if latest.state == "drafted":
        # A pending update is moot once the bulletin is withdrawn.
        updated = (
            replace(latest, state="rejected", rejected_by=actor.id, rejected_at=at,
                    reason_codes=(SUPERSEDED,)),
        )  # fmt: skip
    references = view.chain_references()  # the whole chain, earlier bulletins included
    cancel = VersionRow(
        bulletin.bulletin_id, number, "Cancel", references, "published", 1, texts, (), (),
        withdrawn.channels, {}, actor.id, actor.name, at, approved_by=actor.id, approved_at=at,
        published_at=at,
    )  # fmt: skip
    changed = replace(bulletin, state="retracted", current_version=number, flags=(), updated_at=at)
    retracted = BulletinRetracted(
        bulletin_id=bulletin.bulletin_id, version=number, references=references,
        status=bulletin.status, kind=bulletin.kind, rumor_id=bulletin.rumor_id,
        notice_ids=bulletin.notice_ids, retracted_by=actor.id, reason_code=reason_code,
        retracted_at=at,
    )  # fmt: skip
    detail = {
        "reason_code": reason_code,
        "references": list(references),
        "deliveries_requested": deliveries_requested,
    }
    return BulletinTransition(
        bulletin.bulletin_id,
        bulletin=changed,
        inserted=(cancel,),
        updated=updated,
        timeline=(timeline_step(bulletin, number, "retracted", actor, at, **detail),),
        events=(retracted,),
    )
