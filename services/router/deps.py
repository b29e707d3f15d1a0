"""What router's use cases receive from the composition root, built once at start-up."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import UnitOfWork
from services.common.delivery import Transaction
from services.common.delivery.handset import HandsetPolicy
from services.common.dlq import DeadLetters, KafkaDeadLetters
from services.router.config import RouterSettings
from services.router.domain import DirectoryVersion
from services.router.repository import DeliveryIntake
from services.router.unit_of_work import RouterUnitOfWork

__all__ = ["Clock", "DeliveryIntake", "KnownDirectory", "RouterDeps", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock (tests inject another through `RouterDeps.clock`)."""
    return datetime.now(UTC)


def _no_timer(_at: datetime) -> None:
    return None


def _nothing() -> None:
    """No escalation worker to wake (tests, or one wired later)."""


class KnownDirectory:
    """The directory in force when this router last read it, to open alerts without a read.

    Only a hint: the write that uses it checks, in the same statement, that it is still
    the one in force (version and digest), and the caller reads it again when not.
    """

    def __init__(self) -> None:
        self.latest: DirectoryVersion | None = None

    def remember(self, directory: DirectoryVersion) -> None:
        """`directory` was read as the one in force."""
        self.latest = directory


@dataclass(frozen=True)
class RouterDeps:
    """Settings, the unit-of-work factory, the delivery engine and the clock.

    `delivery` is None only where nothing is delivered (the delivery plan's own view,
    unit tests with fakes); `wake_escalation` makes the escalation worker look for due
    timers now (called after a commit that made one due); `timer_set` tells it of a
    deadline this process has just committed (it looks again only if that comes before
    its sleep ends); `wake_delivery` makes the delivery engine look for due records now
    (an SMS to send again).
    """

    settings: RouterSettings
    sessions: async_sessionmaker[AsyncSession]
    delivery: DeliveryIntake | None = None
    source: str = "aviso.router"
    clock: Clock = field(default=utcnow)
    wake_escalation: Callable[[], None] = field(default=_nothing)
    # The dead-letter topic for ops (None: this cluster's, read when asked).
    dead_letters: DeadLetters | None = None
    wake_delivery: Callable[[], None] = field(default=_nothing)
    # A timer or expiry this process just committed (an alert opened or re-opened).
    timer_set: Callable[[datetime], None] = field(default=_no_timer)
    known_directory: KnownDirectory = field(default_factory=KnownDirectory)

    def unit_of_work(self) -> RouterUnitOfWork:
        """A new transaction: `async with deps.unit_of_work() as uow: ...; await uow.commit()`."""
        return RouterUnitOfWork(self.sessions, source=self.source, accept=self.delivery)

    def joining(self, outer: UnitOfWork | Transaction) -> RouterUnitOfWork:
        """Router's repositories inside a unit of work a Kafka consumer or the engine opened."""
        return RouterUnitOfWork.joining(outer, source=self.source, accept=self.delivery)

    def dlq(self) -> DeadLetters:
        """The dead-letter topic ops read and replay."""
        return self.dead_letters or KafkaDeadLetters(self.settings.kafka_bootstrap_servers)

    @property
    def handset_policy(self) -> HandsetPolicy:
        """What a handset failure report leads to (`kannel_handset_*`)."""
        return HandsetPolicy(
            max_attempts=self.settings.kannel_handset_attempts,
            retry_after=timedelta(seconds=self.settings.kannel_handset_retry_s),
        )

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
        return self.settings.department_timezone

    def notice_url(self, notice_id: uuid.UUID) -> str:
        """Where a contact reads the restricted detail (intake, contact token required)."""
        return f"{self.settings.router_intake_base_url.rstrip('/')}/v1/notices/{notice_id}"

    def alert_page_url(self, alert_id: uuid.UUID) -> str | None:
        """The console's page of the alert, when a console is configured (None otherwise)."""
        base = self.settings.console_base_url
        return f"{base.rstrip('/')}/alerts/{alert_id}" if base else None

    def reading_url(self, *, alert_id: uuid.UUID, notice_id: uuid.UUID) -> str:
        """Where a person reads the notice: the console's alert page (sign-in there), or,
        without a console, intake's API (a phone browser cannot send its token)."""
        return self.alert_page_url(alert_id) or self.notice_url(notice_id)
