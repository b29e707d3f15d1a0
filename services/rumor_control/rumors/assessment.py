"""A vetter's assessment of a rumor, and the Rumor/Fact bulletin it drafts.

A rumor has one chain of bulletins: the new draft replaces the rumor's pending drafts
(drafted -> withdrawn: they say what the vetter no longer says) and, once approved, its
live bulletin (the draft is already that chain's CAP Update, worded as an update).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from schemas.base import Language, Status, is_drill
from schemas.rumors import RumorAssessment
from services.common.logging import get_logger
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import (
    LANGUAGES,
    Actor,
    InvalidInput,
    NotFound,
    NoticeRow,
    RumorRow,
    bulletin_status,
    lifecycle,
)
from services.rumor_control.domain import rumors as transitions
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import apply_bulletin, area_variables, load_bulletin
from services.rumor_control.vetting.drafts import create_draft

__all__ = ["assess_rumor", "fact_variables"]

log = get_logger(__name__)


def fact_variables(
    deps: RumorControlDeps,
    rumor: RumorRow,
    notices: Sequence[NoticeRow],
    *,
    status: Status,
    as_of: datetime,
    expires_at: datetime,
    updates: bool,
    notice_cancelled: bool = False,
) -> dict[Language, dict[str, Any]]:
    """What the Rumor/Fact template says: the assessment and, if confirmed, the window;
    whether it updates the rumor's earlier bulletin; whether the operation was called off."""
    live = [n for n in notices if n.cancelled_at is None and n.window_start and n.window_end]
    confirmed = rumor.assessment == "Confirmed" and bool(live)
    starts = [n.window_start for n in live if n.window_start is not None]
    ends = [n.window_end for n in live if n.window_end is not None]
    variables = area_variables(deps, rumor.area_code, rumor.area)
    for lang in LANGUAGES:
        variables[lang].update(
            drill=is_drill(status),
            assessment=rumor.assessment,
            observed_at=rumor.first_observed_at,
            as_of=as_of,
            expires_at=expires_at,
            window_start=min(starts) if confirmed else None,
            window_end=max(ends) if confirmed else None,
            updates=updates,
            notice_cancelled=notice_cancelled,
        )
    return variables


async def assess_rumor(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    actor: Actor,
    rumor_id: uuid.UUID,
    assessment: RumorAssessment,
    as_of: datetime | None,
    expires_at: datetime | None,
    linked_notice_ids: Sequence[uuid.UUID],
) -> tuple[RumorRow, uuid.UUID]:
    """Set a rumor's status (a vetter's decision) and draft the Rumor/Fact bulletin."""
    now = deps.clock()
    valid = timedelta(minutes=deps.settings.rumor_assessment_valid_minutes)
    as_of, expires_at = transitions.assessment_window(
        as_of=as_of, expires_at=expires_at, now=now, valid=valid
    )
    rumor, notices = await _rumor_and_notices(uow, rumor_id, linked_notice_ids)
    transition = transitions.assess(
        rumor, actor=actor, assessment=assessment, as_of=as_of, expires_at=expires_at,
        linked_notice_ids=linked_notice_ids, at=now,
    )  # fmt: skip
    await uow.rumors.apply(transition)
    rumor = transition.rumor
    status = bulletin_status([rumor.status, *(n.status for n in notices)])
    chain = await _start_over(uow, actor=actor, rumor_id=rumor_id, at=now)
    # The assessing vetter is the author: the assessment decides what the bulletin says,
    # so another vetter must approve it.
    bulletin_id = await create_draft(
        uow,
        deps=deps,
        kind="rumor_fact",
        template_id="rumor_fact",
        status=status,
        variables=fact_variables(
            deps,
            rumor,
            notices,
            status=status,
            as_of=as_of,
            expires_at=expires_at,
            updates=bool(chain),
        ),
        notice_ids=rumor.linked_notice_ids,
        rumor_id=rumor_id,
        area_code=rumor.area_code,
        standby_for_notice=None,
        first_reported_at=rumor.first_reported_at,
        author=actor,
        references=chain,
    )
    assessed = {"assessment": assessment, "revision": rumor.assessment_revision}
    uow.after_commit(
        lambda: log.info(
            "rumor.assessed", rumor_id=str(rumor_id), bulletin_id=str(bulletin_id), **assessed
        )
    )
    return rumor, bulletin_id


async def _rumor_and_notices(
    uow: RumorControlUoW, rumor_id: uuid.UUID, linked_notice_ids: Sequence[uuid.UUID]
) -> tuple[RumorRow, Sequence[NoticeRow]]:
    """The rumor, locked for the assessment, and the notices the vetter linked (all known)."""
    rumor = await uow.rumors.get(rumor_id, for_update=True)
    if rumor is None:
        raise NotFound(str(rumor_id))
    notices = await uow.notices.get_many(linked_notice_ids)
    unknown = set(linked_notice_ids) - {n.notice_id for n in notices}
    if unknown:
        raise InvalidInput(
            "assessment.unknown_notice", "unknown notice ids: " + ", ".join(map(str, unknown))
        )
    return rumor, notices


async def _start_over(
    uow: RumorControlUoW, *, actor: Actor, rumor_id: uuid.UUID, at: datetime
) -> tuple[str, ...]:
    """Withdraw the rumor's pending drafts; the live bulletin's chain the new one continues."""
    for bulletin_id in await uow.bulletins.of_rumor(rumor_id, states=("drafted",)):
        view = await load_bulletin(uow, bulletin_id, for_update=True)
        await apply_bulletin(
            uow,
            lifecycle.withdraw(
                view, reason_code=lifecycle.WITHDRAWN_BY_ASSESSMENT, actor=actor, at=at
            ),
        )
    live = await uow.bulletins.of_rumor(rumor_id, states=("published",))
    if not live:
        return ()
    return (await load_bulletin(uow, live[-1])).chain_references()
