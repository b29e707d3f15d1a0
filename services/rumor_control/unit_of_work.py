"""The unit of work of rumor_control: one transaction with this service's repositories.

Use cases are typed against `RumorControlUoW`, the Protocol below, so unit tests pass an
in-memory fake (tests/unit/rumor_control/fakes.py); the service passes
`RumorControlUnitOfWork`, which builds the SQL repositories over its session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.base import Status
from schemas.notices import NoticeReceived, NoticeUpdated
from services.common.db import AfterCommit, UnitOfWork
from services.common.delivery.handset import HandsetPolicy, ReportEffect
from services.common.delivery.sms_reports import DeliveryReport
from services.common.inbox import Claim
from services.rumor_control.community.repository import SqlSubscribers, Subscribers
from services.rumor_control.domain import (
    Aggregate,
    AuditEntry,
    BulletinRow,
    BulletinState,
    DeliveryRow,
    NoticeRow,
    ReceiptRow,
    ReportRow,
    RumorRow,
    TimelineRecord,
    VersionApplied,
    VersionRow,
)
from services.rumor_control.domain.bulletins import BulletinTransition, BulletinView
from services.rumor_control.domain.rumors import RumorTransition
from services.rumor_control.repository import (
    SqlBulletins,
    SqlDeliveries,
    SqlNotices,
    SqlRumors,
    SqlTimeline,
)

__all__ = [
    "Bulletins",
    "Deliveries",
    "Notices",
    "RumorControlTransaction",
    "RumorControlUnitOfWork",
    "RumorControlUoW",
    "Rumors",
    "Timeline",
]


class Notices(Protocol):
    """The notice projection."""

    async def lock(self, notice_id: uuid.UUID) -> None: ...
    async def get(self, notice_id: uuid.UUID) -> NoticeRow | None: ...
    async def get_many(self, notice_ids: Iterable[uuid.UUID]) -> list[NoticeRow]: ...
    async def recent(self, *, since: datetime) -> list[NoticeRow]: ...
    async def apply_version(
        self, notice: NoticeReceived | NoticeUpdated, *, at: datetime
    ) -> VersionApplied: ...
    async def project_new_claiming(
        self, notice: NoticeReceived | NoticeUpdated, *, at: datetime, claim: Claim
    ) -> bool: ...
    async def project_versions(
        self, versions: Sequence[NoticeReceived | NoticeUpdated], *, at: datetime
    ) -> list[VersionApplied]: ...
    async def merge_version(
        self, notice: NoticeReceived | NoticeUpdated, *, at: datetime
    ) -> None: ...
    async def cancel(
        self, *, notice_id: uuid.UUID, version: int, status: Status, at: datetime
    ) -> None: ...
    async def fingerprints_of(
        self, notice_ids: Iterable[uuid.UUID]
    ) -> tuple[frozenset[str], frozenset[str]]: ...
    async def request_standby(
        self, *, notice_id: uuid.UUID, alert_id: uuid.UUID, by: uuid.UUID, at: datetime
    ) -> None: ...


class Rumors(Protocol):
    """The rumor ledger."""

    async def candidates(
        self,
        *,
        status: Status,
        area_code: str | None,
        place_key: str,
        observed_at: datetime,
        window: timedelta,
    ) -> list[RumorRow]: ...
    async def get(self, rumor_id: uuid.UUID, *, for_update: bool = False) -> RumorRow | None: ...
    async def latest(self, *, limit: int = 200) -> list[RumorRow]: ...
    async def reports_of(self, rumor_id: uuid.UUID) -> list[ReportRow]: ...
    async def reports_of_many(
        self, rumor_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ReportRow]]: ...
    async def apply(self, transition: RumorTransition) -> None: ...


class Bulletins(Protocol):
    """Bulletins and their versions."""

    async def get(
        self, bulletin_id: uuid.UUID, *, for_update: bool = False
    ) -> BulletinRow | None: ...
    async def view(
        self, bulletin_id: uuid.UUID, *, for_update: bool = False
    ) -> BulletinView | None: ...
    async def standby_for(self, notice_id: uuid.UUID) -> uuid.UUID | None: ...
    async def of_rumor(
        self, rumor_id: uuid.UUID, *, states: Sequence[BulletinState]
    ) -> list[uuid.UUID]: ...
    async def latest(
        self,
        *,
        states: Sequence[BulletinState] | None = None,
        drills: bool = True,
        limit: int = 200,
    ) -> list[tuple[BulletinRow, VersionRow]]: ...
    async def citing(
        self, notice_id: uuid.UUID, *, states: Sequence[BulletinState]
    ) -> list[tuple[BulletinRow, VersionRow]]: ...
    async def public_versions(
        self, *, limit: int = 200
    ) -> list[tuple[BulletinRow, VersionRow]]: ...
    async def apply(self, transition: BulletinTransition) -> None: ...


class Deliveries(Protocol):
    """Delivery records (the delivery engine's, read here) and receipts."""

    async def of(self, bulletin_id: uuid.UUID) -> list[DeliveryRow]: ...
    async def apply_report(
        self, report: DeliveryReport, *, now: datetime, policy: HandsetPolicy
    ) -> ReportEffect | None: ...
    async def confirm_receipt(
        self,
        *,
        bulletin_id: uuid.UUID,
        version: int,
        recipient_id: uuid.UUID,
        at: datetime,
        first_step: TimelineRecord,
    ) -> bool: ...
    async def receipts_of(self, bulletin_id: uuid.UUID) -> list[ReceiptRow]: ...


class Timeline(Protocol):
    """Reads of the audit log."""

    async def entries(
        self, *, aggregate: Aggregate, aggregate_id: uuid.UUID
    ) -> list[AuditEntry]: ...


class RumorControlUoW(Protocol):
    """What a rumor_control use case needs of its transaction."""

    @property
    def session(self) -> AsyncSession:
        """The transaction's session (what the delivery engine accepts orders in)."""
        ...

    @property
    def notices(self) -> Notices: ...
    @property
    def rumors(self) -> Rumors: ...
    @property
    def bulletins(self) -> Bulletins: ...
    @property
    def deliveries(self) -> Deliveries: ...
    @property
    def timeline(self) -> Timeline: ...
    @property
    def subscribers(self) -> Subscribers: ...
    def after_commit(self, effect: AfterCommit) -> None: ...


class RumorControlTransaction(RumorControlUoW, Protocol):
    """A unit of work as its opener (a route, a worker) holds it: opened, then committed."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...


class RumorControlUnitOfWork(UnitOfWork):
    """`services.common.db.UnitOfWork` with rumor_control's SQL repositories."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], *, source: str) -> None:
        super().__init__(factory)
        self._source = source

    @classmethod
    def joining(cls, uow: UnitOfWork, *, source: str) -> Self:
        """This service's view of a unit of work someone else opened (a Kafka consumer's,
        which also holds the inbox row): the same session and transaction; its opener
        commits it."""
        joined = cls(uow._factory, source=source)
        joined._session = uow.session
        return joined

    @classmethod
    def on_session(cls, session: AsyncSession, *, source: str) -> Self:
        """This service's view of a transaction known only by its session (the delivery
        engine's, whose outcome hooks write the timeline); its opener commits it."""
        # The factory is never used: a joined unit of work is not entered, only read from.
        joined = cls(async_sessionmaker(session.bind), source=source)
        joined._session = session
        return joined

    @property
    def notices(self) -> SqlNotices:
        """The notice projection."""
        return SqlNotices(self.session)

    @property
    def rumors(self) -> SqlRumors:
        """The rumor ledger."""
        return SqlRumors(self.session, source=self._source)

    @property
    def bulletins(self) -> SqlBulletins:
        """Bulletins and their versions."""
        return SqlBulletins(self.session, source=self._source)

    @property
    def deliveries(self) -> SqlDeliveries:
        """Delivery records and receipts."""
        return SqlDeliveries(self.session)

    @property
    def timeline(self) -> SqlTimeline:
        """Reads of the audit log."""
        return SqlTimeline(self.session)

    @property
    def subscribers(self) -> SqlSubscribers:
        """Community subscribers by SMS."""
        return SqlSubscribers(self.session)
