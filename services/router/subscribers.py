"""Router's Kafka wiring: each handler parses its envelope and calls one use case.

The consumer (services/common/kafka.py) opens the unit of work, records the inbox row in
it, and commits after the handler returns; the handler joins router's repositories to it.
Notifications leave through the router's own delivery engine (accepted in the same
transaction), not through Kafka. notice.received also carries the inbox claim in its
opening statement when it can (a lone record on PostgreSQL: one round trip instead of
BEGIN, claim, opening and COMMIT; services/common/applying.py `ClaimCarrier`).
"""

from __future__ import annotations

from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import NOTICES
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.inbox import Claim
from services.common.kafka import EventConsumer
from services.router import alerting
from services.router.deps import RouterDeps

__all__ = ["register_consumers"]


def register_consumers(consumer: EventConsumer, deps: RouterDeps) -> None:
    """Alerting consumes notices."""
    notices = f"{deps.settings.router_group_prefix}.notices"

    async def open_claiming(
        envelope: Envelope[NoticeReceived], uow: UnitOfWork, claim: Claim
    ) -> bool:
        return await alerting.open_alert_claiming(
            deps.joining(uow), deps=deps, notice=envelope.data, claim=claim
        )

    @consumer.on("notice.received", topic=NOTICES, group_id=notices, carrier=open_claiming)
    async def on_notice_received(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
        await alerting.open_alert(deps.joining(uow), deps=deps, notice=envelope.data)

    @consumer.on("notice.updated", topic=NOTICES, group_id=notices)
    async def on_notice_updated(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        await alerting.reopen_alert(deps.joining(uow), deps=deps, notice=envelope.data)

    @consumer.on("notice.cancelled", topic=NOTICES, group_id=notices)
    async def on_notice_cancelled(envelope: Envelope[NoticeCancelled], uow: UnitOfWork) -> None:
        await alerting.cancel_alert(deps.joining(uow), deps=deps, notice=envelope.data)
