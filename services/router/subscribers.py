"""Router's Kafka wiring: each handler parses its envelope and calls one use case.

The consumer (services/common/kafka.py) opens the unit of work, records the inbox row in
it, and commits after the handler returns; the handler joins router's repositories to it.
Notifications leave through the router's own delivery engine (accepted in the same
transaction), not through Kafka. notice.received also carries the inbox claim in its
opening statement when it can (a lone record on PostgreSQL: one round trip instead of
BEGIN, claim, opening and COMMIT; services/common/applying.py `ClaimCarrier`), and a run
of them in a batch has its openings sent together (PostgreSQL: one round trip for the
run instead of one each; `RunPreparer`); at a batch's head they carry their claims too,
sent without BEGIN (one round trip for the run instead of BEGIN, the claim, the openings
and COMMIT; `RunCarrier`).
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import NOTICES
from services.common.applying import Handler, RunCarrier, RunPreparer
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.direct import is_postgres_session
from services.common.inbox import Claim
from services.common.kafka import EventConsumer
from services.router import alerting
from services.router.alerting.notices import FinishOpening
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

    async def on_notice_received(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
        await alerting.open_alert(deps.joining(uow), deps=deps, notice=envelope.data)

    consumer.on(
        "notice.received",
        topic=NOTICES,
        group_id=notices,
        carrier=open_claiming,
        prepare_run=_run_preparer(deps, on_notice_received),
        carry_run=_run_carrier(deps),
    )(on_notice_received)

    @consumer.on("notice.updated", topic=NOTICES, group_id=notices)
    async def on_notice_updated(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        await alerting.reopen_alert(deps.joining(uow), deps=deps, notice=envelope.data)

    @consumer.on("notice.cancelled", topic=NOTICES, group_id=notices)
    async def on_notice_cancelled(envelope: Envelope[NoticeCancelled], uow: UnitOfWork) -> None:
        await alerting.cancel_alert(deps.joining(uow), deps=deps, notice=envelope.data)


def _run_preparer(deps: RouterDeps, one_by_one: Handler) -> RunPreparer:
    """A run of notice.received in a batch: their usual openings in one round trip
    (PostgreSQL; SQLite applies them `one_by_one`), then each message finished in order
    by the handler this returns."""

    async def open_run(envelopes: Sequence[Envelope[NoticeReceived]], uow: UnitOfWork) -> Handler:
        if not is_postgres_session(uow.session):
            return one_by_one
        finishers = await alerting.open_alerts(
            deps.joining(uow),
            deps=deps,
            notices=[(envelope.data, envelope.correlation_id) for envelope in envelopes],
        )
        # By message id: the run's messages are distinct (the inbox claim dropped copies).
        finishing = {envelope.id: f for envelope, f in zip(envelopes, finishers, strict=True)}

        async def finish(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
            await finishing[envelope.id](deps.joining(uow))

        return finish

    return open_run


def _run_carrier(deps: RouterDeps) -> RunCarrier:
    """A batch's leading run of notice.received with their inbox claims (PostgreSQL): each
    usual opening carrying its claim, all in one round trip without BEGIN; per message
    what finishes it once committed, or None for one to apply as usual."""

    async def carry_run(
        envelopes: Sequence[Envelope[NoticeReceived]], claims: Sequence[Claim], uow: UnitOfWork
    ) -> list[Handler | None]:
        finishers = await alerting.open_alerts_claiming(
            deps.joining(uow),
            deps=deps,
            notices=[
                (envelope.data, envelope.correlation_id, claim)
                for envelope, claim in zip(envelopes, claims, strict=True)
            ],
        )
        return [_finishing(deps, f) if f is not None else None for f in finishers]

    return carry_run


def _finishing(deps: RouterDeps, finish: FinishOpening) -> Handler:
    """A run's opening finished as a handler: on the unit of work it was carried in."""

    async def finished(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
        await finish(deps.joining(uow))

    return finished
