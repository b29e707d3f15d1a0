"""Kafka wiring of intake: router's directory announcements, each handled by ONE use case.

The consumer (services/common/kafka.py) opens the transaction, records the inbox row in it
(a message delivered twice is applied once) and commits after the handler returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.directory import DirectoryPublished
from schemas.topics import DIRECTORY
from services.common.cloudevents import Envelope
from services.common.db import AfterCommit, UnitOfWork
from services.common.kafka import EventConsumer
from services.intake.config import IntakeSettings
from services.intake.directory import record_directory
from services.intake.people import DirectoryPeople

__all__ = ["register"]


@dataclass(frozen=True)
class _Joined:
    """Intake's directory repository over the consumer's transaction (which it commits)."""

    outer: UnitOfWork

    @property
    def directory(self) -> DirectoryPeople:
        return DirectoryPeople(self.outer.session)

    def after_commit(self, effect: AfterCommit) -> None:
        self.outer.after_commit(effect)


def register(consumer: EventConsumer, settings: IntakeSettings) -> None:
    """Directory announcements, in intake's own consumer group."""
    group = f"{settings.intake_group_prefix}.directory"

    @consumer.on(DirectoryPublished.event_type, topic=DIRECTORY, group_id=group)
    async def directory_published(envelope: Envelope[DirectoryPublished], uow: UnitOfWork) -> None:
        await record_directory(_Joined(uow), event=envelope.data)
