"""A vetter's decision on a draft: approve it (and so publish it) or reject it.

Approving a rumor's bulletin supersedes the rumor's live one in the same transaction: the
rumor never has two live bulletins, not even for a moment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from schemas.base import Language, MsgType
from services.common.cloudevents import current_correlation_id
from services.common.logging import get_logger
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import Actor, BulletinRow, lifecycle, publication
from services.rumor_control.domain import bulletins as transitions
from services.rumor_control.domain.bulletins import BulletinView
from services.rumor_control.metrics import BULLETINS_PUBLISHED, REPORT_TO_BULLETIN_SECONDS
from services.rumor_control.publishing.requests import (
    community_orders,
    delivery_orders,
    request_deliveries,
)
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import apply_bulletin, load_bulletin
from services.rumor_control.vetting.editing import fresh_check

__all__ = ["approve", "reject"]

log = get_logger(__name__)


async def approve(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    actor: Actor,
    bulletin_id: uuid.UUID,
    sign_off_languages: Sequence[Language] = (),
) -> BulletinView:
    """drafted -> approved -> published, in one transaction: events, deliveries, feeds; the
    rumor's live bulletin, if another, becomes superseded (this one is its CAP Update)."""
    now = deps.clock()
    view = await load_bulletin(uow, bulletin_id, for_update=True)
    bulletin, latest = view.bulletin, view.latest
    checked = await fresh_check(uow, deps=deps, view=view)
    live = await _live_of_rumor(uow, bulletin)
    msg_type: MsgType = "Update" if live is not None else latest.msg_type
    area = deps.gazetteer.get(bulletin.area_code)
    orders = delivery_orders(
        department=deps.department, bulletin=bulletin, version=latest.version,
        msg_type=msg_type, correlation_id=current_correlation_id.get(),
    ) + await community_orders(
        uow, deps=deps, bulletin=bulletin, version=latest.version, msg_type=msg_type,
        correlation_id=current_correlation_id.get(),
    )  # fmt: skip
    transition = transitions.approve(
        view, actor=actor, sign_off_languages=sign_off_languages, checked=checked,
        expires_at=await _expiry(uow, bulletin, now), supersedes=live,
        area_name=None if area is None else area.name("en"), deliveries_requested=len(orders),
        at=now,
    )  # fmt: skip
    await apply_bulletin(uow, transition)
    if live is not None:
        superseded = lifecycle.supersede(
            live, by=bulletin_id, version=latest.version, actor=actor, at=now
        )
        await apply_bulletin(uow, superseded)
    # The deliveries commit with the publication, or not at all.
    await request_deliveries(uow, deps=deps, orders=orders)
    uow.after_commit(
        _published(view, live=live, msg_type=msg_type, deliveries=len(orders), now=now)
    )
    return await load_bulletin(uow, bulletin_id)


def _published(
    view: BulletinView,
    *,
    live: BulletinView | None,
    msg_type: MsgType,
    deliveries: int,
    now: datetime,
) -> Callable[[], None]:
    """What runs once the publication has committed: its metrics and its log line."""
    bulletin, latest = view.bulletin, view.latest
    since_report = (
        None if bulletin.first_reported_at is None else (now - bulletin.first_reported_at)
    )

    def published() -> None:
        BULLETINS_PUBLISHED.labels(bulletin.kind, msg_type).inc()
        if since_report is not None:
            REPORT_TO_BULLETIN_SECONDS.observe(since_report.total_seconds())
        log.info(
            "bulletin.published",
            bulletin_id=str(bulletin.bulletin_id),
            version=latest.version,
            msg_type=msg_type,
            supersedes=None if live is None else str(live.bulletin.bulletin_id),
            status=bulletin.status,
            channels=list(latest.channels),
            deliveries_requested=deliveries,
            seconds_since_first_report=(
                None if since_report is None else round(since_report.total_seconds(), 1)
            ),
        )

    return published


async def _live_of_rumor(uow: RumorControlUoW, bulletin: BulletinRow) -> BulletinView | None:
    """The rumor's live bulletin this one replaces when approved (locked), if another."""
    if bulletin.rumor_id is None:
        return None  # a standby: one per notice, updated by its own versions
    for other in await uow.bulletins.of_rumor(bulletin.rumor_id, states=("published",)):
        if other != bulletin.bulletin_id:
            return await load_bulletin(uow, other, for_update=True)
    return None


async def _expiry(uow: RumorControlUoW, bulletin: BulletinRow, now: datetime) -> datetime | None:
    """A Rumor/Fact bulletin lasts as long as its rumor's assessment, and a Confirmed one at
    least until the end of the window it announces."""
    rumor = None if bulletin.rumor_id is None else await uow.rumors.get(bulletin.rumor_id)
    if rumor is None:
        return None
    announced = None
    if rumor.assessment == "Confirmed":
        notices = await uow.notices.get_many(bulletin.notice_ids)
        ends = [n.window_end for n in notices if n.cancelled_at is None and n.window_end]
        announced = max(ends, default=None)
    return lifecycle.expiry(assessment_expires_at=rumor.expires_at, announced_end=announced, at=now)


async def reject(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    actor: Actor,
    bulletin_id: uuid.UUID,
    reason_codes: Sequence[str],
    comment: str | None,
) -> BulletinView:
    """drafted -> rejected; a rejected update leaves the published version in force."""
    view = await load_bulletin(uow, bulletin_id, for_update=True)
    transition = publication.reject(
        view, actor=actor, reason_codes=reason_codes, comment=comment, at=deps.clock()
    )
    await apply_bulletin(uow, transition)
    codes = sorted(set(reason_codes))
    uow.after_commit(
        lambda: log.info("bulletin.rejected", bulletin_id=str(bulletin_id), reason_codes=codes)
    )
    return await load_bulletin(uow, bulletin_id)
