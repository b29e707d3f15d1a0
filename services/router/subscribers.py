"""Router's Kafka wiring: each handler parses its envelope and calls one use case.

The consumer (services/common/kafka.py) opens the unit of work, records the inbox row in
it, and commits after the handler returns; the handler joins router's repositories to it.
Two consumer groups, so a slow channel never delays the next notice's alert.
"""

from __future__ import annotations

from schemas.deliveries import DeliveryRequested
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import DELIVERIES, NOTICES
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.kafka import EventConsumer
from services.router import alerting, delivery
from services.router.deps import RouterDeps

__all__ = ["register_consumers"]


def register_consumers(consumer: EventConsumer, deps: RouterDeps) -> None:
    """Alerting consumes notices; the channel adapters consume delivery requests."""
    notices = f"{deps.settings.router_group_prefix}.notices"
    adapters = f"{deps.settings.router_group_prefix}.adapters"

    @consumer.on("notice.received", topic=NOTICES, group_id=notices)
    async def on_notice_received(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
        await alerting.open_alert(deps.joining(uow), deps=deps, notice=envelope.data)

    @consumer.on("notice.updated", topic=NOTICES, group_id=notices)
    async def on_notice_updated(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        await alerting.reopen_alert(deps.joining(uow), deps=deps, notice=envelope.data)

    @consumer.on("notice.cancelled", topic=NOTICES, group_id=notices)
    async def on_notice_cancelled(envelope: Envelope[NoticeCancelled], uow: UnitOfWork) -> None:
        await alerting.cancel_alert(deps.joining(uow), deps=deps, notice=envelope.data)

    @consumer.on("delivery.requested", topic=DELIVERIES, group_id=adapters)
    async def on_delivery_requested(envelope: Envelope[DeliveryRequested], uow: UnitOfWork) -> None:
        await delivery.deliver(deps.joining(uow), deps=deps, request=envelope.data)
