"""Kafka wiring of rumor control: each handler takes its envelope and calls ONE use case.

The consumer (services/common/kafka.py) opens the unit of work, records the inbox row in
it, and commits after the handler returns; handlers adapt it to this service's unit of work.
"""

from __future__ import annotations

from schemas.alerts import AlertAcknowledged
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import ALERTS, NOTICES
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.kafka import EventConsumer
from services.rumor_control import notices
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.unit_of_work import RumorControlUnitOfWork

__all__ = ["register"]


def register(consumer: EventConsumer, deps: RumorControlDeps) -> None:
    """Notices and acknowledgements, each in its consumer group.

    Bulletin deliveries do not come through Kafka: publishing hands them to the delivery
    engine in its own transaction (publishing/requests.py), and its worker sends them.
    """
    prefix = deps.settings.rumor_group_prefix
    notices_group = f"{prefix}rumor_control.notices"
    alerts_group = f"{prefix}rumor_control.alerts"
    on = consumer.on

    def ours(uow: UnitOfWork) -> RumorControlUnitOfWork:
        return RumorControlUnitOfWork.joining(uow, source=deps.source)

    # A received and an updated notice are the same use case: project the newest version.
    @on("notice.received", topic=NOTICES, group_id=notices_group)
    @on("notice.updated", topic=NOTICES, group_id=notices_group)
    async def notice_version(
        envelope: Envelope[NoticeReceived | NoticeUpdated], uow: UnitOfWork
    ) -> None:
        await notices.apply_notice(ours(uow), deps=deps, notice=envelope.data)

    @on("notice.cancelled", topic=NOTICES, group_id=notices_group)
    async def notice_cancelled(envelope: Envelope[NoticeCancelled], uow: UnitOfWork) -> None:
        await notices.apply_notice_cancelled(ours(uow), deps=deps, cancelled=envelope.data)

    @on("alert.acknowledged", topic=ALERTS, group_id=alerts_group)
    async def alert_acknowledged(envelope: Envelope[AlertAcknowledged], uow: UnitOfWork) -> None:
        await notices.acknowledge_alert(ours(uow), deps=deps, acknowledged=envelope.data)
