"""Router's side of the delivery engine: what to send for an alert, and what outcomes mean.

The engine (services/common/delivery) claims due records, asks `resolve` for the message
in a short read transaction, sends it outside any transaction, and calls a hook in the
transaction that records the outcome. The hooks are the use cases of
`delivery.outcomes` (`on_outcomes`: a whole batch at once, `record_outcomes`); this class
only adapts the engine's calls to them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import get_args

from sqlalchemy.ext.asyncio import AsyncSession

from schemas.deliveries import DeliveryChannel
from services.common.delivery import (
    BaseDeliveryPlan,
    Delivered,
    DeliveryOrder,
    DeliveryRecord,
    Failure,
    Outbound,
    Resolution,
    Settled,
    SettleRead,
    Skip,
    Transaction,
)
from services.common.delivery.settle_query import SettleCarry
from services.router import domain
from services.router.delivery.carried import carry_outcomes
from services.router.delivery.compose import Links, outbound
from services.router.delivery.outcomes import (
    record_attempt_failed,
    record_delivered,
    record_failed,
    record_outcomes,
    record_skipped,
)
from services.router.deps import RouterDeps
from services.router.domain import AlertRecord
from services.router.repository.alert_statements import lean_settle_read
from services.router.repository.alerts import SETTLED_READ
from services.router.unit_of_work import RouterUnitOfWork, RouterUoW

__all__ = ["RouterDeliveryPlan"]

# Router's repositories over the engine's session (a fake unit of work in unit tests).
Views = Callable[[AsyncSession], RouterUoW]


class RouterDeliveryPlan(BaseDeliveryPlan):
    """Notifications of alerts: addresses from the alert's frozen snapshot, text from the record.

    `deps` is the router's (its `delivery` is not needed here: outcomes order no
    deliveries). Retries go on while the alert still wants the message (`resolve` skips
    it once acknowledged, resolved or superseded), at most `router_delivery_give_up_s`.
    """

    # Every channel of the one channel type: the engine fails at start-up without a
    # sender for each, so no channel can silently fall through to another.
    channels: Collection[DeliveryChannel] = get_args(DeliveryChannel)

    def __init__(self, deps: RouterDeps, *, views: Views | None = None) -> None:
        self._deps = deps
        self._views = views or self._sql_view
        self._carries = views is None
        if views is None:
            # On PostgreSQL the outcome batch's lean read of its alerts rides in the
            # engine's settling statement: one round trip fewer per outcome round.
            # A final failure's alert is read by its hook, locked: not read for it here.
            self.settle_read = SettleRead(lean_settle_read(), SETTLED_READ, finals=False)

    def _sql_view(self, session: AsyncSession) -> RouterUoW:
        return RouterUnitOfWork.over(session, source=self._deps.source)

    def give_up_after(self, order: DeliveryOrder) -> timedelta:
        """The cap on retrying one notification (`router_delivery_give_up_s`)."""
        return timedelta(seconds=self._deps.settings.router_delivery_give_up_s)

    async def resolve(self, session: AsyncSession, record: DeliveryRecord) -> Outbound | Skip:
        """The message to send now, or Skip when the notification is no longer wanted."""
        alert = await self._views(session).alerts.get(record.aggregate_id)
        return self._message(alert, record)

    async def resolve_all(
        self, session: AsyncSession, records: Sequence[DeliveryRecord]
    ) -> list[Resolution]:
        """`resolve` for a claimed batch, its alerts read in one query (an escalation burst
        claims dozens of records at once; a read each was most of their cost)."""
        alerts = await self._views(session).alerts.get_many({r.aggregate_id for r in records})
        resolved: list[Resolution] = []
        # One clock reading and one signed link per person for the batch: a notice's
        # webhook and e-mail to one person are resolved together, with the same link.
        now = self._deps.clock()
        links: Links = {}
        for record in records:
            try:
                alert = alerts.get(record.aggregate_id)
                resolved.append(self._message(alert, record, now=now, links=links))
            except Exception as exc:  # reported per record by the engine
                resolved.append(exc)
        return resolved

    def _message(
        self,
        alert: AlertRecord | None,
        record: DeliveryRecord,
        *,
        now: datetime | None = None,
        links: Links | None = None,
    ) -> Outbound | Skip:
        if alert is None:
            return Skip("unknown_alert")
        if not domain.delivery_still_wanted(
            state=alert.state,
            alert_version=alert.notice_version,
            request_version=record.aggregate_version,
            purpose=record.purpose,
        ):
            detail = {"state": alert.state, "current_version": alert.notice_version}
            return Skip("not_wanted", detail)
        when = now if now is not None else self._deps.clock()
        return outbound(self._deps, alert, record, when, links=links)

    async def on_delivered(
        self, tx: Transaction, record: DeliveryRecord, result: Delivered
    ) -> None:
        """triggered -> delivered, alert.delivered."""
        await record_delivered(
            self._views(tx.session), deps=self._deps, record=record, result=result
        )

    async def on_attempt_failed(
        self, tx: Transaction, record: DeliveryRecord, failure: Failure
    ) -> None:
        """A failed attempt on the timeline and as alert.delivery_failed (final: false)."""
        await record_attempt_failed(
            self._views(tx.session), deps=self._deps, record=record, failure=failure
        )

    async def on_failed(self, tx: Transaction, record: DeliveryRecord, failure: Failure) -> None:
        """The channel failed for good (final: true); the step may escalate at once."""
        await record_failed(
            self._views(tx.session), deps=self._deps, record=record, failure=failure
        )

    async def on_skipped(self, tx: Transaction, record: DeliveryRecord, skip: Skip) -> None:
        """Not sent: acknowledged, resolved or superseded meanwhile."""
        await record_skipped(self._views(tx.session), deps=self._deps, record=record, skip=skip)

    async def carry_settled(
        self, tx: Transaction, outcomes: Sequence[Settled]
    ) -> SettleCarry | None:
        """On PostgreSQL, a batch without a final failure: its writes in the engine's
        settling statement, sent alone (`carry_outcomes`)."""
        if not self._carries:
            return None
        return await carry_outcomes(tx.session, deps=self._deps, outcomes=outcomes)

    async def on_outcomes(self, tx: Transaction, outcomes: Sequence[Settled]) -> None:
        """A batch of outcomes: the hooks' meaning, in a constant number of statements."""
        await record_outcomes(self._views(tx.session), deps=self._deps, outcomes=outcomes)
