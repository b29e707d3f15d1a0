"""The rumor ledger: rumors and the reports clustered into them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.base import Status
from services.common.outbox import enqueue
from services.rumor_control.domain import ReportRow, RumorRow
from services.rumor_control.domain.rumors import RumorTransition
from services.rumor_control.repository._sql import aware, uuid_or_none, when
from services.rumor_control.repository.timeline import record
from services.rumor_control.tables import rumor_reports, rumors

__all__ = ["SqlRumors"]


def _rumor(row: Any) -> RumorRow:
    return RumorRow(
        rumor_id=uuid.UUID(row.rumor_id),
        status=row.status,
        area_code=row.area_code,
        area=row.area,
        place_key=row.place_key,
        report_count=row.report_count,
        channels=tuple(row.channels or ()),
        first_reported_at=when(row.first_reported_at),
        last_reported_at=when(row.last_reported_at),
        first_observed_at=when(row.first_observed_at),
        last_observed_at=when(row.last_observed_at),
        assessment=row.assessment,
        assessment_revision=row.assessment_revision,
        as_of=aware(row.as_of),
        expires_at=aware(row.expires_at),
        assessed_by=uuid_or_none(row.assessed_by),
        assessed_by_name=row.assessed_by_name,
        linked_notice_ids=tuple(uuid.UUID(i) for i in row.linked_notice_ids or ()),
    )


def _columns(rumor: RumorRow) -> dict[str, Any]:
    return {
        "status": rumor.status,
        "area_code": rumor.area_code,
        "area": rumor.area,
        "place_key": rumor.place_key,
        "report_count": rumor.report_count,
        "channels": list(rumor.channels),
        "first_reported_at": rumor.first_reported_at,
        "last_reported_at": rumor.last_reported_at,
        "first_observed_at": rumor.first_observed_at,
        "last_observed_at": rumor.last_observed_at,
        "assessment": rumor.assessment,
        "assessment_revision": rumor.assessment_revision,
        "as_of": rumor.as_of,
        "expires_at": rumor.expires_at,
        "assessed_by": None if rumor.assessed_by is None else str(rumor.assessed_by),
        "assessed_by_name": rumor.assessed_by_name,
        "linked_notice_ids": [str(i) for i in rumor.linked_notice_ids],
    }


def _report(row: Any) -> ReportRow:
    return ReportRow(
        report_id=uuid.UUID(row.report_id),
        rumor_id=uuid.UUID(row.rumor_id),
        claim=row.claim,
        place_as_heard=row.place_as_heard,
        channel=row.channel,
        organisation=row.organisation,
        language=row.language,
        reporter_name=row.reporter_name,
        observed_at=aware(row.observed_at),
        reported_at=when(row.reported_at),
        reporter_id=uuid_or_none(row.reporter_id),
    )


class SqlRumors:
    """Rumors and reports; a transition is applied with its timeline entry and event."""

    def __init__(self, session: AsyncSession, *, source: str) -> None:
        self._session = session
        self._source = source

    async def candidates(
        self,
        *,
        status: Status,
        area_code: str | None,
        place_key: str,
        observed_at: datetime,
        window: timedelta,
    ) -> list[RumorRow]:
        """Rumors of the same place and status whose times lie near `observed_at`, locked."""
        place = (
            rumors.c.area_code == area_code
            if area_code is not None
            else sa.and_(rumors.c.area_code.is_(None), rumors.c.place_key == place_key)
        )
        statement = (
            sa.select(rumors)
            .where(
                rumors.c.status == status,
                place,
                rumors.c.last_observed_at >= observed_at - window,
                rumors.c.first_observed_at <= observed_at + window,
            )
            .order_by(rumors.c.first_reported_at)
            .with_for_update()
        )
        return [_rumor(row) for row in await self._session.execute(statement)]

    async def get(self, rumor_id: uuid.UUID, *, for_update: bool = False) -> RumorRow | None:
        """One rumor (locked for the rest of the transaction with `for_update`)."""
        statement = sa.select(rumors).where(rumors.c.rumor_id == str(rumor_id))
        if for_update:
            statement = statement.with_for_update()
        row = (await self._session.execute(statement)).first()
        return None if row is None else _rumor(row)

    async def latest(self, *, limit: int = 200) -> list[RumorRow]:
        """The most recently reported rumors first."""
        rows = await self._session.execute(
            sa.select(rumors).order_by(rumors.c.last_reported_at.desc()).limit(limit)
        )
        return [_rumor(row) for row in rows]

    async def reports_of(self, rumor_id: uuid.UUID) -> list[ReportRow]:
        """A rumor's reports, oldest first."""
        rows = await self._session.execute(
            sa.select(rumor_reports)
            .where(rumor_reports.c.rumor_id == str(rumor_id))
            .order_by(rumor_reports.c.reported_at)
        )
        return [_report(row) for row in rows]

    async def reports_of_many(
        self, rumor_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ReportRow]]:
        """The reports of several rumors (one query for a page of the ledger)."""
        if not rumor_ids:
            return {}
        rows = await self._session.execute(
            sa.select(rumor_reports)
            .where(rumor_reports.c.rumor_id.in_([str(i) for i in rumor_ids]))
            .order_by(rumor_reports.c.reported_at)
        )
        found: dict[uuid.UUID, list[ReportRow]] = {}
        for row in rows:
            report = _report(row)
            found.setdefault(report.rumor_id, []).append(report)
        return found

    async def apply(self, transition: RumorTransition) -> None:
        """Write the rumor (and its new report), the timeline entry and the event together."""
        rumor = transition.rumor
        if transition.created:
            statement: Any = sa.insert(rumors).values(rumor_id=str(rumor.rumor_id))
        else:
            statement = sa.update(rumors).where(rumors.c.rumor_id == str(rumor.rumor_id))
        await self._session.execute(statement.values(**_columns(rumor)))
        report = transition.report
        if report is not None:
            await self._session.execute(
                sa.insert(rumor_reports).values(
                    report_id=str(report.report_id),
                    rumor_id=str(report.rumor_id),
                    claim=report.claim,
                    place_as_heard=report.place_as_heard,
                    channel=report.channel,
                    organisation=report.organisation,
                    language=report.language,
                    reporter_id=None if report.reporter_id is None else str(report.reporter_id),
                    reporter_name=report.reporter_name,
                    observed_at=report.observed_at,
                    reported_at=report.reported_at,
                )
            )
        await record(self._session, transition.timeline)
        await enqueue(self._session, transition.event, source=self._source)
