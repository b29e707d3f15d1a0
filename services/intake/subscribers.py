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
    """Directory announcements, in intake's own consumer group.

    Its session (`intake_consumer_session_timeout_ms`, 6 s) is longer than router's, and
    its idle long-poll (`intake_consumer_fetch_max_wait_ms`, 5 s) longer than the
    services' 1 s: an idle member heartbeats every 2 s instead of every 667 ms and sends an
    empty fetch every 5 s instead of every second; an announcement is still fetched as it
    lands. A crashed instance's partitions pass to another within ~11 s instead of ~3 s.
    """
    group = f"{settings.intake_group_prefix}.directory"
    consumer.group(
        group,
        inboxes={DIRECTORY: group},  # as `on` names it: what the group applied stays applied
        session_timeout_ms=settings.intake_consumer_session_timeout_ms,
        fetch_max_wait_ms=settings.intake_consumer_fetch_max_wait_ms,
    )

    @consumer.on(DirectoryPublished.event_type, topic=DIRECTORY, group_id=group)
    async def directory_published(envelope: Envelope[DirectoryPublished], uow: UnitOfWork) -> None:
        await record_directory(_Joined(uow), event=envelope.data)
