"""Drafting a new bulletin from a pre-vetted template: the guardrails run before anyone sees it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from schemas.base import Language, Status
from schemas.bulletins import BulletinKind
from services.common.logging import get_logger
from services.rumor_control import domain
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import Actor
from services.rumor_control.domain import bulletins as transitions
from services.rumor_control.drafting import TemplateId
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import apply_bulletin, check_texts, texts_json

__all__ = ["create_draft"]

log = get_logger(__name__)


async def create_draft(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    kind: BulletinKind,
    template_id: TemplateId,
    status: Status,
    variables: Mapping[Language, Mapping[str, Any]],
    notice_ids: Sequence[uuid.UUID],
    rumor_id: uuid.UUID | None,
    area_code: str | None,
    standby_for_notice: uuid.UUID | None,
    first_reported_at: datetime | None,
    author: Actor | None,
    references: tuple[str, ...] = (),
) -> uuid.UUID:
    """Render both languages, run the guardrails and record the draft; returns its id.
    With `references` (the chain of the live bulletin it will replace) it is an Update."""
    now = deps.clock()
    texts = texts_json(deps.drafter.render_all(template_id, variables))
    checked = await check_texts(
        uow,
        deps=deps,
        texts=texts,
        status=status,
        channels=domain.channels_for(status),
        notice_ids=notice_ids,
    )
    transition = transitions.draft(
        bulletin_id=uuid.uuid4(), kind=kind, template_id=template_id, status=status,
        texts=texts, checked=checked, notice_ids=notice_ids, rumor_id=rumor_id,
        area_code=area_code, standby_for_notice=standby_for_notice,
        first_reported_at=first_reported_at, author=author, at=now, references=references,
    )  # fmt: skip
    await apply_bulletin(uow, transition)
    bulletin_id, blocked = transition.bulletin_id, list(checked.blocked)
    uow.after_commit(
        lambda: log.info(
            "bulletin.drafted",
            bulletin_id=str(bulletin_id),
            kind=kind,
            status=status,
            blocked_reasons=blocked,
        )
    )
    return bulletin_id
