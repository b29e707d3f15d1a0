"""Withdrawing a published bulletin: a correction goes out and the feeds carry a CAP Cancel."""

from __future__ import annotations

import uuid

from schemas.base import is_drill
from services.common.cloudevents import current_correlation_id
from services.common.logging import get_logger
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import LANGUAGES, Actor, publication
from services.rumor_control.domain.bulletins import BulletinView
from services.rumor_control.metrics import BULLETINS_PUBLISHED
from services.rumor_control.publishing.requests import (
    community_orders,
    delivery_orders,
    request_deliveries,
)
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import (
    apply_bulletin,
    area_variables,
    load_bulletin,
    texts_json,
)

__all__ = ["retract"]

log = get_logger(__name__)


async def retract(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    actor: Actor,
    bulletin_id: uuid.UUID,
    reason_code: str,
) -> BulletinView:
    """published -> retracted: a correction goes out and the feeds carry a CAP Cancel."""
    now = deps.clock()
    view = await load_bulletin(uow, bulletin_id, for_update=True)
    bulletin = view.bulletin
    withdrawn, version = publication.retracted_version(view)
    variables = area_variables(deps, bulletin.area_code, None)
    for lang in LANGUAGES:
        variables[lang].update(
            drill=is_drill(bulletin.status),
            withdrawn_headline=withdrawn.texts[lang]["headline"],
            published_at=withdrawn.published_at,
        )
    sections = deps.drafter.render_all("correction", variables)
    orders = delivery_orders(
        department=deps.department, bulletin=bulletin, version=version, msg_type="Cancel",
        correlation_id=current_correlation_id.get(),
    ) + await community_orders(
        uow, deps=deps, bulletin=bulletin, version=version, msg_type="Cancel",
        correlation_id=current_correlation_id.get(),
    )  # fmt: skip
    transition = publication.retract(
        view, actor=actor, reason_code=reason_code, texts=texts_json(sections),
        deliveries_requested=len(orders), at=now,
    )  # fmt: skip
    await apply_bulletin(uow, transition)
    # The correction goes out if and only if the retraction commits.
    await request_deliveries(uow, deps=deps, orders=orders)

    def retracted() -> None:
        BULLETINS_PUBLISHED.labels(bulletin.kind, "Cancel").inc()
        log.info(
            "bulletin.retracted",
            bulletin_id=str(bulletin_id),
            version=version,
            reason_code=reason_code,
            deliveries_requested=len(orders),
        )

    uow.after_commit(retracted)
    return await load_bulletin(uow, bulletin_id)
