"""Router's unit of work: one transaction and the repositories that work inside it.

Use cases are typed against `RouterUoW` (a Protocol), so tests/unit pass an in-memory
fake; the service passes `RouterUnitOfWork`, the common unit of work plus router's
repositories over its session.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.directory import DirectoryPublished
from services.common.db import AfterCommit, UnitOfWork
from services.common.delivery import DeliveryState, Transaction
from services.common.delivery.handset import HandsetPolicy, ReportEffect
from services.common.delivery.sms_reports import DeliveryReport
from services.common.inbox import Claim
from services.router.domain import (
    AlertRecord,
    DirectoryDocument,
    DirectorySource,
    DirectoryVersion,
    TimelineEntry,
    Transition,
)
from services.router.repository import (
    DeliveryIntake,
    SqlAlertRepository,
    SqlDeliveryRepository,
    SqlDirectoryRepository,
)

__all__ = [
    "AlertRepository",
    "DeliveryRepository",
    "DirectoryRepository",
    "RouterUnitOfWork",
    "RouterUoW",
]


class AlertRepository(Protocol):
    """Alerts, their timers and their timelines."""

    async def get(self, alert_id: uuid.UUID, *, lock: bool = False) -> AlertRecord | None: ...

    async def get_many(self, alert_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AlertRecord]: ...

    async def get_many_lean(
        self, alert_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, AlertRecord]: ...

    async def for_notice(
        self, notice_id: uuid.UUID, *, lock: bool = False
    ) -> AlertRecord | None: ...

    async def page(
        self,
        *,
        states: Sequence[str],
        limit: int,
        offset: int,
        notice_id: uuid.UUID | None = None,
    ) -> list[AlertRecord]: ...

    async def count_by_state(self) -> dict[str, int]: ...

    async def apply(self, transition: Transition) -> bool: ...

    async def open(
        self,
        transition: Transition,
        *,
        directory_version: int,
        directory_digest: str,
        claim: Claim | None = None,
    ) -> bool: ...

    async def open_many(
        self,
        transitions: Sequence[Transition],
        *,
        directory_version: int,
        directory_digest: str,
        claims: Sequence[Claim] | None = None,
    ) -> list[bool]: ...

    async def apply_all(self, transitions: Sequence[Transition]) -> list[bool]: ...

    async def claim_due_timers(
        self, *, now: datetime, limit: int, skip: Sequence[str] = ()
    ) -> list[AlertRecord]: ...

    async def claim_due_expiry(
        self, *, now: datetime, skip: Sequence[str] = ()
    ) -> uuid.UUID | None: ...

    async def next_deadline(self) -> datetime | None: ...

    async def timeline(self, alert_id: uuid.UUID) -> list[TimelineEntry]: ...

    async def notified_entry(
        self, alert_id: uuid.UUID, *, delivery_id: uuid.UUID
    ) -> TimelineEntry | None: ...

    async def notified_recipients(self, alert_id: uuid.UUID) -> list[uuid.UUID]: ...


class DirectoryRepository(Protocol):
    """Stored directory versions."""

    async def current(self) -> DirectoryVersion | None: ...

    async def last_file_digest(self) -> str | None: ...

    async def add(
        self,
        *,
        version: int,
        document: DirectoryDocument,
        digest: str,
        source: DirectorySource,
        created_by: str,
        at: datetime,
    ) -> None: ...

    async def announce(self, event: DirectoryPublished) -> None: ...


class DeliveryRepository(Protocol):
    """How this router's notifications stand (the delivery engine's records)."""

    async def states(self, delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, DeliveryState]: ...

    async def apply_report(
        self, report: DeliveryReport, *, now: datetime, policy: HandsetPolicy
    ) -> ReportEffect | None: ...


class RouterUoW(Protocol):
    """What a router use case needs: its repositories and after-commit effects."""

    @property
    def alerts(self) -> AlertRepository: ...

    @property
    def directory(self) -> DirectoryRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    def after_commit(self, effect: AfterCommit) -> None: ...


class RouterUnitOfWork(UnitOfWork):
    """The common unit of work with router's repositories over its session.

    `accept` is the delivery engine's: transitions that order deliveries need it.
    """

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        source: str,
        accept: DeliveryIntake | None = None,
    ) -> None:
        super().__init__(factory)
        self._source = source
        self._accept = accept
        self._joined: AsyncSession | None = None

    @classmethod
    def joining(
        cls, outer: UnitOfWork | Transaction, *, source: str, accept: DeliveryIntake | None = None
    ) -> RouterUnitOfWork:
        """Router's view of a unit of work opened elsewhere (a Kafka consumer's, or the
        delivery engine's transaction that records an outcome).

        It shares the outer session, so the outer owner (the consumer, which also holds
        the inbox row in it; the engine, which settles the delivery record in it) still
        commits; the use case given this view never does.
        """
        return cls.over(outer.session, source=source, accept=accept)

    @classmethod
    def over(
        cls, session: AsyncSession, *, source: str, accept: DeliveryIntake | None = None
    ) -> RouterUnitOfWork:
        """Router's repositories over a session someone else opened and will end."""
        # No factory: a joined view never opens a session of its own.
        joined = cls(cast(async_sessionmaker[AsyncSession], None), source=source, accept=accept)
        joined._joined = session
        return joined

    @property
    def session(self) -> AsyncSession:
        return self._joined if self._joined is not None else super().session

    @property
    def alerts(self) -> SqlAlertRepository:
        return SqlAlertRepository(self.session, source=self._source, accept=self._accept)

    @property
    def directory(self) -> SqlDirectoryRepository:
        return SqlDirectoryRepository(self.session, source=self._source)

    @property
    def deliveries(self) -> SqlDeliveryRepository:
        return SqlDeliveryRepository(self.session)
