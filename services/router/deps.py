"""What router's use cases receive from the composition root, built once at start-up."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import UnitOfWork
from services.router.config import RouterSettings
from services.router.unit_of_work import RouterUnitOfWork

if TYPE_CHECKING:  # the delivery package imports this module: no cycle at run time
    from services.router.delivery.adapters import Channels

__all__ = ["Clock", "RouterDeps", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock (tests inject another through `RouterDeps.clock`)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RouterDeps:
    """Settings, the unit-of-work factory, the channels and the clock."""

    settings: RouterSettings
    sessions: async_sessionmaker[AsyncSession]
    channels: Channels
    source: str = "aviso.router"
    clock: Clock = field(default=utcnow)

    def unit_of_work(self) -> RouterUnitOfWork:
        """A new transaction: `async with deps.unit_of_work() as uow: ...; await uow.commit()`."""
        return RouterUnitOfWork(self.sessions, source=self.source)

    def joining(self, outer: UnitOfWork) -> RouterUnitOfWork:
        """Router's repositories inside a unit of work a Kafka consumer opened."""
        return RouterUnitOfWork.joining(outer, source=self.source)

    @property
    def horizon(self) -> timedelta:
        return timedelta(seconds=self.settings.router_urgency_horizon_s)

    @property
    def public_base_url(self) -> str:
        base = self.settings.public_base_url
        if not base:
            base = f"http://{self.settings.http_host}:{self.settings.router_port}"
        return base.rstrip("/")

    @property
    def link_secret(self) -> bytes:
        return self.settings.link_secret.get_secret_value().encode("utf-8")

    @property
    def timezone(self) -> str:
        return self.settings.router_display_timezone

    def notice_url(self, notice_id: uuid.UUID) -> str:
        """Where a contact reads the restricted detail (intake, contact token required)."""
        return f"{self.settings.router_intake_base_url.rstrip('/')}/v1/notices/{notice_id}"
