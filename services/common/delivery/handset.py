"""Delivery reports on the delivery record, and a handset failure as the engine's failure.

Kannel answers a sendsms request as soon as it has queued the text, so the engine records
the delivery as `delivered` then. The SMS gateway's reports come later (`sms_reports`):
accepted by the carrier, delivered to the handset, or failed. `apply_report` keeps the
furthest one on the record (`report`, `reported_at`; a late "accepted" never overwrites
"delivered") and turns a failure into what any other channel's failure would be:

    delivered --failed report, attempts left--> pending (sent again at `retry_at`)
    delivered --failed report, none left or past give_up_at--> failed

The owning service writes the same timeline entries and events as for a failed attempt
(`Failure`), so its fallback (the next channel, the next escalation step) applies as is.

A failure reported while the record is still `pending` or `sending` (the engine has not
settled the send that the report is about) raises `NotSettled`: the endpoint tries again
for a moment (the engine settles within milliseconds of the gateway's answer), then
answers 503 (`until_settled` is that wait, shared by every service's report endpoint).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import AfterCommit
from services.common.delivery.records import DeliveryRecord, Failure, record_from_row
from services.common.delivery.sms_reports import DeliveryReport, ReportStatus
from services.common.logging import get_logger
from services.common.settings import CommonSettings

__all__ = [
    "HandsetPolicy",
    "NotSettled",
    "ReportEffect",
    "ReportedDeliveries",
    "apply_report",
    "news_of",
    "until_settled",
]

log = get_logger(__name__)

# How far a report says a text got: a report of a lower rank never replaces a higher one.
_RANK: dict[ReportStatus, int] = {"accepted": 1, "delivered": 2, "failed": 2}


class NotSettled(RuntimeError):
    """A failure report about a send the engine has not recorded yet: ask again later."""


@dataclass(frozen=True)
class HandsetPolicy:
    """How many sends a handset failure allows in all, and how long before sending again."""

    max_attempts: int = 2
    retry_after: timedelta = timedelta(seconds=30)

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> HandsetPolicy:
        """The policy `kannel_handset_attempts` and `kannel_handset_retry_s` describe."""
        return cls(
            max_attempts=settings.kannel_handset_attempts,
            retry_after=timedelta(seconds=settings.kannel_handset_retry_s),
        )


@dataclass(frozen=True)
class ReportEffect:
    """What one report changed. `fresh`: it told something new; `failure`: the handset
    failure to record as the channel's failure (final, or retried at `failure.retry_at`)."""

    record: DeliveryRecord
    status: ReportStatus
    fresh: bool
    failure: Failure | None = None


async def apply_report(
    session: AsyncSession,
    table: sa.Table,
    report: DeliveryReport,
    *,
    now: datetime,
    policy: HandsetPolicy,
) -> ReportEffect | None:
    """Record `report` on its delivery (row-locked); None when no such delivery exists."""
    t = table
    query = sa.select(t).where(t.c.delivery_id == report.delivery_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await session.execute(query)).mappings().one_or_none()
    if row is None:
        return None
    record = record_from_row(row)
    known = cast(ReportStatus | None, row["report"])
    fresh = known is None or _RANK[report.status] > _RANK[known]
    if not fresh:
        return ReportEffect(record, report.status, fresh=False)
    values: dict[str, Any] = {"report": report.status, "reported_at": report.reported_at or now}
    failure: Failure | None = None
    if report.status == "failed":
        if row["state"] in ("pending", "sending"):
            raise NotSettled(report.delivery_id)
        if row["state"] == "delivered":
            failure = _handset_failure(record, now=now, policy=policy)
            values.update(_failed_values(failure, now=now))
    await session.execute(sa.update(t).where(t.c.delivery_id == report.delivery_id).values(values))
    return ReportEffect(record, report.status, fresh=True, failure=failure)


class ReportedDeliveries(Protocol):
    """A service's delivery repository, as far as reports go."""

    async def apply_report(
        self, report: DeliveryReport, *, now: datetime, policy: HandsetPolicy
    ) -> ReportEffect | None: ...


async def news_of(
    deliveries: ReportedDeliveries,
    report: DeliveryReport,
    *,
    now: datetime,
    policy: HandsetPolicy,
    after_commit: Callable[[AfterCommit], None],
) -> ReportEffect | None:
    """Apply `report` to its delivery record; the effect when it tells the service something
    new, else None: a report for a delivery this service does not have (a warning) or one
    it already had (Kannel repeats them; debug), logged after commit by delivery id only."""
    effect = await deliveries.apply_report(report, now=now, policy=policy)
    fields = {"delivery_id": report.delivery_id, "status": report.status}
    if effect is None:
        after_commit(lambda: log.warning("sms.report_for_unknown_delivery", **fields))
        return None
    if not effect.fresh:
        after_commit(lambda: log.debug("sms.report_repeated", **fields))
        return None
    return effect


async def until_settled(
    record: Callable[[], Awaitable[object]], *, tries: int = 30, pause_s: float = 0.1
) -> bool:
    """Run `record` (one whole transaction) until no `NotSettled`; False: never in `tries`."""
    for _ in range(tries):
        try:
            await record()
            return True
        except NotSettled:
            # The engine is still recording the send this report is about: it does so
            # right after the gateway's answer, so this wait is short.
            await asyncio.sleep(pause_s)
    return False


def _handset_failure(record: DeliveryRecord, *, now: datetime, policy: HandsetPolicy) -> Failure:
    retry_at = now + policy.retry_after
    final = record.attempts >= policy.max_attempts or retry_at >= record.give_up_at
    return Failure(
        reason="rejected",
        permanent=False,
        final=final,
        attempts=record.attempts,
        at=now,
        retry_at=None if final else retry_at,
        destination_key=record.destination_key,
    )


def _failed_values(failure: Failure, *, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "last_error_class": failure.reason,
        "delivered_at": None,
        "updated_at": now,
    }
    if failure.final:
        values["state"] = "failed"  # delivered -> failed
    else:
        # delivered -> pending: the dispatcher sends it again when it is due, and the
        # reports about that send start afresh (the timeline keeps this one).
        values.update(
            state="pending", next_attempt_at=failure.retry_at, report=None, reported_at=None
        )
    return values
