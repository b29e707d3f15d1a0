"""Intake's notices as rumor_control knows them, and the standby bulletin an acknowledged
notice gets, ready before rumors start.

A notice and its acknowledgement arrive on different topics, in either order: each use
case locks the notice first, and an acknowledgement that comes first leaves a standby
request the notice then fulfils. On PostgreSQL a lone notice.received new here carries the
consumer's inbox claim in its one statement instead (`project_notice_claiming`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, get_args

from schemas.alerts import AlertAcknowledged
from schemas.base import Language, is_drill
from schemas.notices import NoticeReceived, NoticeUpdated
from services.common.inbox import Claim
from services.common.logging import get_logger
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import LANGUAGES, BulletinState, NoticeRow, VersionApplied
from services.rumor_control.domain import bulletins as transitions
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import (
    apply_bulletin,
    area_variables,
    check_texts,
    load_bulletin,
    texts_json,
)
from services.rumor_control.vetting.drafts import create_draft

__all__ = [
    "acknowledge_alert",
    "apply_notice",
    "finish_projected",
    "project_notice_claiming",
    "project_notices",
]

log = get_logger(__name__)

_ALL_STATES: tuple[BulletinState, ...] = get_args(BulletinState)


async def apply_notice(
    uow: RumorControlUoW, *, deps: RumorControlDeps, notice: NoticeReceived | NoticeUpdated
) -> None:
    """Project a notice version; draft a standby that waited for it; re-check drafts."""
    # apply_version takes the notice's lock first (in its one statement on PostgreSQL).
    applied = await uow.notices.apply_version(notice, at=deps.clock())
    await _after_version(uow, deps, notice, applied)


async def project_notices(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    notices: Sequence[NoticeReceived | NoticeUpdated],
) -> list[VersionApplied]:
    """`apply_notice` for a run of versions in a consumer's batch, its first part for all
    of them at once (each one's lock, request and new row: one statement on PostgreSQL);
    then `finish_projected` for each in the same order does the rest."""
    return await uow.notices.project_versions(notices, at=deps.clock())


async def finish_projected(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    notice: NoticeReceived | NoticeUpdated,
    applied: VersionApplied,
) -> None:
    """What `apply_notice` does after a version's first part (`project_notices`): the
    merge into a notice already known, a standby that waited, the drafts' re-check."""
    if not applied.first_seen:
        await uow.notices.merge_version(notice, at=deps.clock())
    await _after_version(uow, deps, notice, applied)


async def _after_version(
    uow: RumorControlUoW,
    deps: RumorControlDeps,
    notice: NoticeReceived | NoticeUpdated,
    applied: VersionApplied,
) -> None:
    if applied.standby_requested:
        await _draft_standby(uow, deps, notice.notice_id)
    elif notice.msg_type == "Update":
        await _refresh_standby(uow, deps, notice.notice_id)
    if not applied.first_seen:
        # A new version may add restricted terms, so drafts that cite the notice are
        # re-checked (approval re-checks too; this keeps what the vetter sees current).
        # A notice new here has none: a draft cites only notices already projected (the
        # standby just drafted was checked as it was made).
        await _recheck_drafts(uow, deps, notice.notice_id)
    _projected(uow, notice)


async def project_notice_claiming(
    uow: RumorControlUoW, *, deps: RumorControlDeps, notice: NoticeReceived, claim: Claim
) -> bool:
    """A notice new here in one statement with the consumer's inbox claim, committed by
    itself: whether it was (else nothing was written and `apply_notice` decides)."""
    # A new notice has no drafts to re-check and, with no request waiting (the statement
    # checks), no standby to draft: its projection's row is all of apply_notice's work.
    if not await uow.notices.project_new_claiming(notice, at=deps.clock(), claim=claim):
        return False
    _projected(uow, notice)
    return True


def _projected(uow: RumorControlUoW, notice: NoticeReceived | NoticeUpdated) -> None:
    notice_id, version = str(notice.notice_id), notice.version
    uow.after_commit(lambda: log.info("notice.projected", notice_id=notice_id, version=version))


async def acknowledge_alert(
    uow: RumorControlUoW, *, deps: RumorControlDeps, acknowledged: AlertAcknowledged
) -> None:
    """The SPOC acknowledged a notice: draft its standby bulletin, ready if rumors start."""
    await uow.notices.lock(acknowledged.notice_id)
    notice = await uow.notices.get(acknowledged.notice_id)
    if notice is None or notice.window_start is None:
        # alerts and notices are separate topics: the notice may still be on its way.
        await uow.notices.request_standby(
            notice_id=acknowledged.notice_id,
            alert_id=acknowledged.alert_id,
            by=acknowledged.acknowledged_by,
            at=deps.clock(),
        )
        return
    await _draft_standby(uow, deps, acknowledged.notice_id)


def _standby_variables(deps: RumorControlDeps, notice: NoticeRow) -> dict[Language, dict[str, Any]]:
    variables = area_variables(deps, notice.area_code, notice.area)
    for lang in LANGUAGES:
        variables[lang].update(drill=is_drill(notice.status), as_of=deps.clock())
    return variables


async def _draft_standby(
    uow: RumorControlUoW, deps: RumorControlDeps, notice_id: uuid.UUID
) -> None:
    if await uow.bulletins.standby_for(notice_id) is not None:
        return  # one standby per notice, however often it is acknowledged
    notice = await uow.notices.get(notice_id)
    if notice is None or notice.cancelled_at is not None:
        return
    slack = timedelta(minutes=deps.settings.rumor_notice_slack_minutes)
    if notice.window_end is not None and notice.window_end + slack < deps.clock():
        # An operation long over needs no standby: this is a replay of old events (a new
        # deployment reads the topics from the start), not an acknowledgement to act on.
        return
    await create_draft(
        uow,
        deps=deps,
        kind="standby",
        template_id="standby",
        status=notice.status,
        variables=_standby_variables(deps, notice),
        notice_ids=(notice_id,),
        rumor_id=None,
        area_code=notice.area_code,
        standby_for_notice=notice_id,
        first_reported_at=None,
        author=None,
    )


async def _refresh_standby(
    uow: RumorControlUoW, deps: RumorControlDeps, notice_id: uuid.UUID
) -> None:
    """Redraft an untouched standby when its notice changes (a new area, a drill flag).

    Only a draft nobody has edited or signed is redrafted: once a person has worked on the
    text it is theirs, and the guardrails (re-run below and at approval) still protect it.
    """
    bulletin_id = await uow.bulletins.standby_for(notice_id)
    notice = await uow.notices.get(notice_id)
    if bulletin_id is None or notice is None:
        return
    view = await load_bulletin(uow, bulletin_id, for_update=True)
    if not transitions.is_untouched_draft(view.latest):
        return
    texts = texts_json(deps.drafter.render_all("standby", _standby_variables(deps, notice)))
    checked = await check_texts(
        uow, deps=deps, texts=texts, status=view.bulletin.status,
        channels=view.latest.channels, notice_ids=view.bulletin.notice_ids,
    )  # fmt: skip
    transition = transitions.redraft(
        view, texts=texts, checked=checked, area_code=notice.area_code, notice_id=notice_id,
        notice_version=notice.version, at=deps.clock(),
    )  # fmt: skip
    await apply_bulletin(uow, transition)


async def _recheck_drafts(
    uow: RumorControlUoW, deps: RumorControlDeps, notice_id: uuid.UUID
) -> None:
    # Whatever the bulletin's state: a published one may have a correction in draft.
    for bulletin, latest in await uow.bulletins.citing(notice_id, states=_ALL_STATES):
        if latest.state != "drafted":
            continue
        checked = await check_texts(
            uow, deps=deps, texts=latest.texts, status=bulletin.status,
            channels=latest.channels, notice_ids=bulletin.notice_ids,
        )  # fmt: skip
        view = transitions.BulletinView(bulletin, (latest,))
        transition = transitions.recheck(
            view, checked=checked, notice_id=notice_id, at=deps.clock()
        )
        if transition is not None:
            await apply_bulletin(uow, transition)
