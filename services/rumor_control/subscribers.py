"""Kafka wiring of rumor control: each handler takes its envelope and calls ONE use case.

The consumer (services/common/kafka.py) opens the unit of work, records the inbox row in
it, and commits after the handler returns; handlers adapt it to this service's unit of work.
A lone notice.received on PostgreSQL may carry the inbox row in its own one statement
instead (services/common/applying.py `ClaimCarrier`); a run of them in a batch is
projected in one statement, then finished one by one (`RunPreparer`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from schemas.alerts import AlertAcknowledged
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import ALERTS, NOTICES
from services.common.applying import ClaimCarrier, RunPreparer
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.inbox import Claim
from services.common.kafka import EventConsumer, Handler
from services.rumor_control import notices
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.unit_of_work import RumorControlUnitOfWork

__all__ = ["group_id", "inboxes", "register"]


def group_id(prefix: str) -> str:
    """Rumor control's one consumer group."""
    return f"{prefix}rumor_control"


def inboxes(prefix: str) -> dict[str, str]:
    """Topic -> the name its messages are recorded under in the inbox (the former groups)."""
    return {NOTICES: f"{prefix}rumor_control.notices", ALERTS: f"{prefix}rumor_control.alerts"}


def register(consumer: EventConsumer, deps: RumorControlDeps) -> None:
    """Notices and acknowledgements, in one consumer group (one member per instance).

    Each topic's messages are recorded in the inbox under the id of the group that read
    it before the two were merged, so an upgraded instance, whose new group starts at the
    earliest offset, applies nothing twice.

    The broker answers this group's fetches once `rumor_consumer_fetch_min_bytes` of events
    have gathered or the fetch wait (1 s) has passed, so a notice or an acknowledgement
    reaches rumor control up to a second later, several events in one fetch and one
    transaction. Its session (`rumor_consumer_session_timeout_ms`, 6 s) is longer than
    the other services': a crashed instance's partitions pass to another within ~7 s
    instead of ~3 s, and an idle member heartbeats every 2 s instead of every 667 ms.

    Bulletin deliveries do not come through Kafka: publishing hands them to the delivery
    engine in its own transaction (publishing/requests.py), and its worker sends them.
    """
    group = group_id(deps.settings.rumor_group_prefix)
    # Fetches in batches: of a notice's four events here (the notice, three alert events
    # of which it applies none), each used to wake this member with a fetch of its own.
    consumer.group(
        group,
        inboxes=inboxes(deps.settings.rumor_group_prefix),
        fetch_min_bytes=deps.settings.rumor_consumer_fetch_min_bytes,
        session_timeout_ms=deps.settings.rumor_consumer_session_timeout_ms,
    )

    def on(event_type: str, *, topic: str) -> Callable[[Handler], Handler]:
        return consumer.on(event_type, topic=topic, group_id=group)

    def ours(uow: UnitOfWork) -> RumorControlUnitOfWork:
        return RumorControlUnitOfWork.joining(uow, source=deps.source)

    # A received and an updated notice are the same use case: project the newest version.
    # A lone notice.received new here carries the inbox claim in its one statement
    # (PostgreSQL), and a run of them in a batch is projected in one statement before
    # each is finished; an update, a cancel and an acknowledgement are more than one
    # statement.
    @consumer.on(
        "notice.received",
        topic=NOTICES,
        group_id=group,
        carrier=_claiming(deps),
        prepare_run=_run_preparer(deps),
    )
    @on("notice.updated", topic=NOTICES)
    async def notice_version(
        envelope: Envelope[NoticeReceived | NoticeUpdated], uow: UnitOfWork
    ) -> None:
        await notices.apply_notice(ours(uow), deps=deps, notice=envelope.data)

    @on("notice.cancelled", topic=NOTICES)
    async def notice_cancelled(envelope: Envelope[NoticeCancelled], uow: UnitOfWork) -> None:
        await notices.apply_notice_cancelled(ours(uow), deps=deps, cancelled=envelope.data)

    @on("alert.acknowledged", topic=ALERTS)
    async def alert_acknowledged(envelope: Envelope[AlertAcknowledged], uow: UnitOfWork) -> None:
        await notices.acknowledge_alert(ours(uow), deps=deps, acknowledged=envelope.data)


def _claiming(deps: RumorControlDeps) -> ClaimCarrier:
    """A lone notice.received new here: projected with its inbox claim in one statement."""

    async def project_claiming(
        envelope: Envelope[NoticeReceived], uow: UnitOfWork, claim: Claim
    ) -> bool:
        ours = RumorControlUnitOfWork.joining(uow, source=deps.source)
        return await notices.project_notice_claiming(
            ours, deps=deps, notice=envelope.data, claim=claim
        )

    return project_claiming


def _run_preparer(deps: RumorControlDeps) -> RunPreparer:
    """A run of notice.received in a batch: projected in one statement, then each message
    finished in order by the handler this returns."""

    async def project_run(
        envelopes: Sequence[Envelope[NoticeReceived]], uow: UnitOfWork
    ) -> Handler:
        projected = await notices.project_notices(
            RumorControlUnitOfWork.joining(uow, source=deps.source),
            deps=deps,
            notices=[envelope.data for envelope in envelopes],
        )
        # By message id: the run's messages are distinct (the inbox claim dropped copies).
        applied = {envelope.id: one for envelope, one in zip(envelopes, projected, strict=True)}

        async def finish(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
            await notices.finish_projected(
                RumorControlUnitOfWork.joining(uow, source=deps.source),
                deps=deps,
                notice=envelope.data,
                applied=applied[envelope.id],
            )

        return finish

    return project_run
