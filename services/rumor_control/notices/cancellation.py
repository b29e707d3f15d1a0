"""A cancelled notice: its standby draft is withdrawn, and every bulletin that draws on it
is flagged to vetters, a live one with a suggested correction drafted as its next version.

Nothing is published here: a person decides what the community reads.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from schemas.base import Language, is_drill
from schemas.notices import NoticeCancelled
from services.common.logging import get_logger
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import LANGUAGES, Texts, lifecycle
from services.rumor_control.domain.bulletins import BulletinView, Checked
from services.rumor_control.drafting import TemplateId
from services.rumor_control.rumors.assessment import fact_variables
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import (
    apply_bulletin,
    area_variables,
    check_texts,
    load_bulletin,
    texts_json,
)

__all__ = ["apply_notice_cancelled"]

log = get_logger(__name__)


async def apply_notice_cancelled(
    uow: RumorControlUoW, *, deps: RumorControlDeps, cancelled: NoticeCancelled
) -> None:
    """Mark a notice cancelled (suggestions turn to False), withdraw its standby draft and
    flag the bulletins that draw on it."""
    notice_id = cancelled.notice_id
    await uow.notices.lock(notice_id)
    await uow.notices.cancel(
        notice_id=notice_id, version=cancelled.version, status=cancelled.status,
        at=cancelled.received_at,
    )  # fmt: skip
    withdrawn = await _withdraw_standby(uow, deps, notice_id)
    flagged: list[str] = []
    for bulletin, _latest in await uow.bulletins.citing(notice_id, states=("published", "drafted")):
        view = await load_bulletin(uow, bulletin.bulletin_id, for_update=True)
        suggestion = await _suggestion(uow, deps, view) if lifecycle.is_live(view) else None
        transition = lifecycle.flag_for_review(
            view, flag=lifecycle.NOTICE_CANCELLED, suggestion=suggestion, at=deps.clock()
        )
        if transition is not None:
            await apply_bulletin(uow, transition)
            flagged.append(str(bulletin.bulletin_id))
    uow.after_commit(
        lambda: log.info(
            "notice.cancelled_applied",
            notice_id=str(notice_id),
            standby_withdrawn=withdrawn,
            flagged=flagged,
        )
    )


async def _withdraw_standby(
    uow: RumorControlUoW, deps: RumorControlDeps, notice_id: uuid.UUID
) -> bool:
    """drafted -> withdrawn: a standby nobody approved is never approved after the cancel."""
    bulletin_id = await uow.bulletins.standby_for(notice_id)
    if bulletin_id is None:
        return False
    view = await load_bulletin(uow, bulletin_id, for_update=True)
    if view.bulletin.state != "drafted":
        return False  # published ones are flagged with the others
    transition = lifecycle.withdraw(
        view, reason_code=lifecycle.NOTICE_CANCELLED, actor=None, at=deps.clock()
    )
    await apply_bulletin(uow, transition)
    return True


async def _suggestion(
    uow: RumorControlUoW, deps: RumorControlDeps, view: BulletinView
) -> tuple[Texts, Checked] | None:
    """The correction suggested for a live bulletin: its Rumor/Fact saying the operation was
    called off, or its standby as of now. None when it cannot be redrafted."""
    bulletin, now = view.bulletin, deps.clock()
    variables: dict[Language, dict[str, object]]
    template: TemplateId
    match bulletin.kind:
        case "rumor_fact":
            rumor = None if bulletin.rumor_id is None else await uow.rumors.get(bulletin.rumor_id)
            if rumor is None:
                return None
            notices = await uow.notices.get_many(bulletin.notice_ids)
            valid = timedelta(minutes=deps.settings.rumor_assessment_valid_minutes)
            expires = rumor.expires_at if rumor.expires_at and rumor.expires_at > now else None
            variables = dict(
                fact_variables(
                    deps,
                    rumor,
                    notices,
                    status=bulletin.status,
                    as_of=now,
                    expires_at=expires or now + valid,
                    updates=True,
                    notice_cancelled=True,
                )
            )
            template = "rumor_fact"
        case "standby":
            variables = dict(area_variables(deps, bulletin.area_code, None))
            for lang in LANGUAGES:
                variables[lang].update(drill=is_drill(bulletin.status), as_of=now)
            template = "standby"
        case "correction":
            return None
    texts = texts_json(deps.drafter.render_all(template, variables))
    checked = await check_texts(
        uow, deps=deps, texts=texts, status=bulletin.status, channels=view.latest.channels,
        notice_ids=bulletin.notice_ids,
    )  # fmt: skip
    return texts, checked
